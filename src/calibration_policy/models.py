"""The records that flow through the system: a calibration run, a rule's verdict, a decision."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from .moments import aware_utc
from .naming import check_source, check_underlying

RunStatus = Literal["applied", "not applied", "pending", "undecided"]

SCHEMA_VERSION = 1
# Values and evidence are numbers as written, never text that looks like one ("1.05" is refused, not coerced).
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict()]
# Smoothing measures time in numpy datetime64[ns], whose clock ends on 2262-04-11.
RUN_EARLIEST, RUN_LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC)


def _finite_scopes(values: dict[str, float] | None, what: str) -> dict[str, float] | None:
    if values is None:
        return None
    for scope, value in values.items():
        if not isinstance(scope, str) or not scope:
            raise ValueError(f"{what} has an empty scope name")
        if not math.isfinite(value):
            raise ValueError(f"{what}[{scope!r}] is {value}, not a finite number")
    return values


class CalibrationRun(BaseModel):
    """One calibration run as stored in the history (one JSON file).

    ``recommended_iv_multiplier`` and ``smoothed_iv_multiplier`` map a scope (``global`` or a
    band name; for other domains, that domain's parameter names) to its value.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    run_id: str = Field("", description="The file name without .json; set by the store.")
    timestamp: datetime
    underlying: str
    source: str
    domain: str = "vol_surface"
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str = ""
    global_metrics: dict[str, Any] = Field(default_factory=dict)
    bands: dict[str, Any] = Field(default_factory=dict)
    recommended_iv_multiplier: dict[str, Number]
    smoothed_iv_multiplier: dict[str, Number] | None = None
    sample_size: Count = Field(ge=0)
    vega_sum: Number | None = None
    applied: bool | None = Field(None, description="None until a decision was made.")
    applied_reason: str | None = None
    applied_values: dict[str, Number] | None = None
    decided_at: datetime | None = None
    forced: bool = False
    pending_suggestion: str | None = None
    decision: dict[str, Any] | None = None

    @field_validator("timestamp", "decided_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)

    @field_validator("timestamp")
    @classmethod
    def _storable(cls, value: datetime) -> datetime:
        # The same years build_run allows: outside them the file-name stamp is not 8 digits, and
        # the smoothing window (timestamp − N days) would leave the datetime range.
        if not RUN_EARLIEST <= value < RUN_LATEST:
            raise ValueError(f"{value.isoformat()} is outside the years 1970 to 2261")
        return value

    @field_validator("underlying")
    @classmethod
    def _underlying(cls, value: str) -> str:
        return check_underlying(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return check_source(value)

    @field_validator("recommended_iv_multiplier")
    @classmethod
    def _recommended(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("has no values")
        return _finite_scopes(value, "recommended_iv_multiplier")  # type: ignore[return-value]

    @field_validator("smoothed_iv_multiplier", "applied_values")
    @classmethod
    def _smoothed(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return _finite_scopes(value, "smoothed values")

    @property
    def recommended(self) -> dict[str, float]:
        """Domain-neutral name for the recommended values by scope."""
        return self.recommended_iv_multiplier

    @property
    def smoothed(self) -> dict[str, float] | None:
        return self.smoothed_iv_multiplier

    @property
    def status(self) -> RunStatus:
        """``applied``, ``not applied``, ``pending`` (waiting for approval) or ``undecided``."""
        if self.applied:
            return "applied"
        if self.pending_suggestion:
            return "pending"
        return "undecided" if self.applied is None else "not applied"


@dataclass(frozen=True)
class RuleVerdict:
    """What one rule thinks of an update, with the numbers behind it.

    ``adjusted`` lets a rule change the values later rules see (``max_step`` clips);
    ``needs`` says in words what it would take to pass ("needs 78 more options");
    ``idle``: the rule had nothing to check (its limit is not set), so it passes without a test;
    ``partly``: it passed for some scopes only, in words ("2 of 4"), so no one reads "Passed" as passed for all.
    """

    code: str
    passed: bool
    text: str
    numbers: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None
    adjusted: dict[str, float] | None = None
    counts_in_reason: bool = True
    idle: bool = False
    partly: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "passed": self.passed,
            "text": self.text,
            "numbers": self.numbers,
            "needs": self.needs,
            "adjusted": self.adjusted,
            **({"idle": True} if self.idle else {}),  # runs recorded before it existed read as not idle
            **({"partly": self.partly} if self.partly else {}),
        }


@dataclass(frozen=True)
class ScopeChange:
    """One scope's old and new value and whether the change reached its threshold."""

    scope: str
    old: float | None
    new: float
    delta: float
    threshold: float
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("scope", "old", "new", "delta", "threshold", "changed")}


@dataclass(frozen=True)
class Decision:
    """Whether to apply, and why. Unpacks as ``(apply, reason)``.

    ``values`` are exactly what would be written (after clipping and per-scope selection).
    """

    apply: bool
    reason: str
    scopes: tuple[ScopeChange, ...] = ()
    verdicts: tuple[RuleVerdict, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    forced: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.apply, self.reason))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        return (self.apply, self.reason)[index]

    def __bool__(self) -> bool:
        return self.apply

    def to_dict(self) -> dict[str, Any]:
        return {
            "apply": self.apply,
            "reason": self.reason,
            "forced": self.forced,
            "values": dict(self.values),
            "scopes": [s.to_dict() for s in self.scopes],
            "verdicts": [v.to_dict() for v in self.verdicts],
        }
