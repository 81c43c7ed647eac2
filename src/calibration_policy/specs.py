"""What a plugin registers: small typed records with a name, a label and, where needed, options.

Modelled on simonw/llm's ``register(Model(...))``: a hook gets a ``register`` callback and calls
it with one of these. The name is what a policy TOML says; the label and description are what
the panel, ``explain`` and ``calibration-policy plugins`` show a person; ``options`` is a pydantic
model the policy validates, so a typo in a plugin's setting fails when the policy loads, not on
the first update. A name another plugin already took is refused unless ``replaces=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class Smoother:
    """A smoothing strategy: ``fn(times, values, options) -> float`` over one scope's window.

    ``batch(times, values, offsets, options) -> array``, if given, smooths many windows at once
    (window ``k`` is ``times[offsets[k]:offsets[k + 1]]``; see :mod:`calibration_policy.engine`)
    and must give exactly what ``fn`` gives each window; without it the engine calls ``fn`` per window.
    """

    name: str
    fn: Callable[..., float]
    label: str = ""
    description: str = ""
    options: type[BaseModel] | None = None
    replaces: bool = False
    batch: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Rule:
    """An apply rule: ``fn(context) -> RuleVerdict``; ``context.options`` holds its validated options.
    ``batch``, if given, is the same rule over arrays of runs (the replay's and the lab's speed)."""

    name: str
    fn: Callable[..., Any]
    label: str = ""
    description: str = ""
    options: type[BaseModel] | None = None
    replaces: bool = False
    # Evidence the rule reads beyond the run's own (see calibration_policy.rule_evidence):
    # "last_applied_at", "recent_smoothed"; the pipeline and the replay supply them only when asked.
    evidence: tuple[str, ...] = ()
    # True when the verdict reads only the run (its values and evidence), never the live values or the
    # last change: led by such rules, a policy's first checks run once over every run of a replay.
    stateless: bool = False
    # ``batch(BatchContext) -> BatchVerdict``: the rule over many runs at once (numpy arrays, one
    # value per run; see calibration_policy.engine). It must pass and adjust exactly as ``fn`` does;
    # without it the engine calls ``fn`` once per run.
    batch: Callable[..., Any] | None = None
    # True when the rule judges the run's evidence alone (its sample size, its evidence figure, the rule's
    # options): a run that fails it is left out of later runs' smoothing (calibration_policy.engine.gates).
    gates_evidence: bool = False
    # The policy's own settings the rule reads (``min_delta`` reads min_delta_global, min_delta_band): with
    # its options model, what the lab's form offers for it.
    settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.gates_evidence and self.evidence:
            raise ValueError(
                f"Rule {self.name!r} gates evidence, so it may read only the run's own evidence, not "
                f"{', '.join(self.evidence)}: which runs are smoothed cannot depend on the live values' history."
            )


@dataclass(frozen=True)
class TargetFactory:
    """How to open a domain's live config: ``factory(underlying, path=None) -> Target``."""

    name: str  # the domain it serves
    factory: Callable[..., Any]
    label: str = ""
    description: str = ""
    replaces: bool = False


@dataclass(frozen=True)
class StoreType:
    """Where runs, decisions, suggestions and the live config's archive are kept: ``open(url) -> Store``.

    ``name`` is the URL scheme it serves (``postgresql`` for ``postgresql://…``); see
    :mod:`calibration_policy.stores` for what a store provides."""

    name: str
    open: Callable[[str], Any]
    label: str = ""
    description: str = ""
    replaces: bool = False


@dataclass(frozen=True)
class ChangeType:
    """A kind of change a plugin adds (its own auto mode, a bulk import): ``change`` is a
    :class:`calibration_policy.governor.Change` subclass, run only through ``Governor(ctx).execute``,
    so it gets the permission check, settling, the intent, validation and events like every other."""

    name: str
    change: type
    label: str = ""
    description: str = ""
    replaces: bool = False


@dataclass(frozen=True)
class Deliverer:
    """How a notification reaches an endpoint: ``send(endpoint, event, message_id, client) -> Sent``.

    ``endpoint`` is a :class:`calibration_policy.notify.Endpoint` (a ``[[notify]]`` table with
    ``deliverer = "<name>"``), ``event`` the event's JSON-safe payload, ``message_id`` the event's id
    (the same on every retry, so a receiver can drop a duplicate), ``client`` an ``httpx.Client``
    that follows no redirect. ``send`` returns a :class:`calibration_policy.delivery.Sent`."""

    name: str
    send: Callable[..., Any]
    label: str = ""
    description: str = ""
    replaces: bool = False
