"""The one flow: record → smooth → normalize → rules → decision → propose | apply → archive → notify.

A package along the flow's seams, each module one job; every name is re-exported here, so
``from calibration_policy.pipeline import X`` keeps working:

- :mod:`calibration_policy.steps`: the steps every change composes (record, smooth, decide, settle,
  propose, apply);
- :mod:`.update`: ``run_update`` and ``force_apply``, what a host and the force button call;
- :mod:`.reviews`: approve, modify, reject and roll back, what a person does;
- :mod:`calibration_policy.recovery`: settling what a killed process left half done;
- :mod:`calibration_policy.versions`: optimistic concurrency (``live_version``, ``check_version``).

Every change runs through one governor (:mod:`calibration_policy.governor`): the functions here
only build a change and a context. The steps, recovery and versions sit below the governor and the
change kinds (which use them), so they are modules of the core rather than of this package: a
package's modules run its ``__init__`` first, which would import the governor back.
"""

from __future__ import annotations

from ..apply import apply_values
from ..recovery import settle_interrupted
from ..steps import (
    FORCED_REASON,
    ForcedValues,
    Smoothed,
    UpdateOutcome,
    _mark_run_applied,
    _reviewed,
    _run_after_review,
    apply,
    decide,
    decide_runs_of,
    evidence_of,
    load_recent_calibration_history,
    not_applied_reason,
    propose,
    record_calibration_result,
    route,
    run_time_for,
    settle,
    smooth,
    smooth_over,
    smoothed_for,
)
from ..stores import locked
from ..versions import check_version, live_version
from .reviews import (
    approve_suggestion,
    modify_suggestion,
    propose_policy,
    reject_suggestion,
    review_policy,
    roll_back,
    roll_back_policy,
    set_policy,
)
from .update import UpdateOptions, force_apply, run_update

__all__ = [
    "FORCED_REASON",
    "ForcedValues",
    "Smoothed",
    "UpdateOptions",
    "UpdateOutcome",
    "_mark_run_applied",
    "_reviewed",
    "_run_after_review",
    "apply",
    "apply_values",
    "approve_suggestion",
    "check_version",
    "decide",
    "decide_runs_of",
    "evidence_of",
    "force_apply",
    "live_version",
    "load_recent_calibration_history",
    "locked",
    "modify_suggestion",
    "not_applied_reason",
    "propose",
    "record_calibration_result",
    "propose_policy",
    "reject_suggestion",
    "review_policy",
    "roll_back",
    "roll_back_policy",
    "route",
    "run_time_for",
    "run_update",
    "settle",
    "set_policy",
    "settle_interrupted",
    "smooth",
    "smooth_over",
    "smoothed_for",
]
