"""What a calibration run looks at: the data source, DTE bands, buckets and liquidity filters.

Strict pydantic models, so a typo in a key or a string where a number belongs is an error
instead of a silently ignored setting.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import AgentInputError

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class HarvestSettings(BaseModel):
    """Where harvested chains live: ``<dir>/<UNDERLYING>/<YYYY-MM-DD>.parquet``."""

    model_config = _STRICT
    dir: str = "data/harvest"


class DteBand(BaseModel):
    """An inclusive range of days to expiry that gets its own IV multiplier."""

    model_config = _STRICT
    min_dte: int = Field(ge=0)
    max_dte: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> DteBand:
        if self.min_dte > self.max_dte:
            raise ValueError(f"min_dte ({self.min_dte}) is larger than max_dte ({self.max_dte})")
        return self


class LiquidityFilters(BaseModel):
    """Options failing any of these are dropped: their quotes say little about fair IV."""

    model_config = _STRICT
    min_volume: int = Field(default=1, ge=0)
    min_open_interest: int = Field(default=10, ge=0)
    max_rel_spread: float = Field(default=0.5, gt=0, allow_inf_nan=False)  # (ask - bid) / mid
    min_vega: float = Field(default=0.5, ge=0, allow_inf_nan=False)  # $ per vol point per contract


def _default_bands() -> dict[str, DteBand]:
    return {"weekly": DteBand(min_dte=3, max_dte=10), "monthly": DteBand(min_dte=20, max_dte=40)}


class CalibrationConfig(BaseModel):
    """Everything ``run_calibration_extended`` needs besides the chain itself."""

    model_config = _STRICT
    source: Literal["live", "harvested"] = "harvested"
    harvest: HarvestSettings = HarvestSettings()
    bands: dict[str, DteBand] = Field(default_factory=_default_bands)
    bucket_by_dte: list[int] = Field(default_factory=lambda: [0, 7, 14, 30, 45, 90])
    bucket_by_abs_delta: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.25, 0.4, 0.6, 0.75, 0.9, 1.0])
    filters: LiquidityFilters = LiquidityFilters()
    fit_skew: bool = True
    emit_recommended_vol_surface: bool = True
    return_rows: bool = False

    @field_validator("bucket_by_dte", "bucket_by_abs_delta")
    @classmethod
    def _increasing(cls, edges: list[Any]) -> list[Any]:
        if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)) or edges[0] < 0:
            raise ValueError("bucket edges must be at least two non-negative, strictly increasing numbers")
        return edges

    @field_validator("bucket_by_abs_delta")
    @classmethod
    def _delta_range(cls, edges: list[float]) -> list[float]:
        if edges[-1] > 1.0:
            raise ValueError("|delta| bucket edges must lie between 0 and 1")
        return edges

    @field_validator("bands")
    @classmethod
    def _disjoint(cls, bands: dict[str, DteBand]) -> dict[str, DteBand]:
        if "global" in bands or "" in bands:
            raise ValueError("a band cannot be named 'global' or ''")
        ranked = sorted(bands.items(), key=lambda item: item[1].min_dte)
        for (name_a, a), (name_b, b) in pairwise(ranked):
            if b.min_dte <= a.max_dte:
                raise ValueError(f"bands {name_a!r} and {name_b!r} overlap; each DTE may belong to one band only")
        return bands

    def band_of(self, dte: int) -> str | None:
        """The band containing ``dte``, or None when it falls between bands."""
        return next((name for name, b in self.bands.items() if b.min_dte <= dte <= b.max_dte), None)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationConfig:
        """Validate a plain dict (e.g. from JSON), turning pydantic's report into one sentence."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise AgentInputError(f"The calibration config is invalid: {describe(exc)}.") from None


def describe(exc: ValidationError) -> str:
    """The first problem pydantic found, as 'where: what' (the rest usually follow from it)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = exc.error_count() - 1
    return f"{where}: {message}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
