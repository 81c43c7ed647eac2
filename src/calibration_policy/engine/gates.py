"""Evidence gates: the rules that decide which runs count in the smoothing.

A rule registered with ``Rule(..., gates_evidence=True)`` judges a run by its own evidence alone
(its sample size, its evidence figure, the rule's options): the built-in ``min_sample_size`` and
``min_vega_sum``, or a plugin's (a minimum notional). A run that fails any gate in the policy is too
thin to trust, so with ``smoothing_skips_thin_runs`` (the default) it stays out of every later run's
smoothing window. Whether it fails is the rule's own verdict — its batch form, else its ``fn`` run by
run, through the same :func:`.rules.evaluate` that decides — so the smoothing and the checklist never
disagree about a run: an unknown figure fails the gate in both.

A gate sees no values (``proposed`` and ``current`` are empty): which runs are smoothed cannot depend on
the smoothing's answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models import CalibrationRun
from ..policy import CalibrationUpdatePolicy
from .rules import evaluate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DOING = "choosing the runs the smoothing counts"


def evidence_gates(policy: CalibrationUpdatePolicy) -> list[tuple[str, Any, Any]]:
    """The policy's gates as ``(name, rule, options)``, in the policy's order."""
    from ..plugins import get_rule

    found = [(name, get_rule(name)) for name in policy.rules]
    return [(name, rule, policy.validated_rule_options(name)) for name, rule in found if rule.gates_evidence]


def passing(
    runs: Sequence[CalibrationRun], policy: CalibrationUpdatePolicy, evidence: dict[str, Any] | None = None
) -> npt.NDArray[np.bool_]:
    """Which of ``runs`` may join a later run's smoothing window: those that pass every gate (all of them
    when the policy keeps thin runs, or has no gate). ``evidence``: the runs' ``sample_size`` and
    ``vega_sum`` as float arrays (NaN: unknown), when the caller has them (e.g. every underlying's runs
    end to end, judged in one batch)."""
    import numpy as np

    keep = np.ones(len(runs), dtype=bool)
    gates = evidence_gates(policy) if policy.smoothing_skips_thin_runs and len(runs) else []
    if not gates:
        return keep
    if evidence is None:
        evidence = {
            "sample_size": np.array([run.sample_size for run in runs], dtype=np.float64),
            "vega_sum": np.array(
                [math.nan if run.vega_sum is None else run.vega_sum for run in runs], dtype=np.float64
            ),
        }

    def per_run(k: int) -> dict[str, Any]:
        return {"sample_size": runs[k].sample_size, "vega_sum": runs[k].vega_sum}

    return evaluate(gates, policy, {}, {}, dict(evidence), runs, per_run, doing=DOING).passed
