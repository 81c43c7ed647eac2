"""The live synthetic vol surface settings: a global IV multiplier plus per-DTE-band overrides.

The model prices an option at ``synthetic_iv * multiplier``, where the multiplier is that of the
band containing the option's DTE, or the global one between bands. The file is rewritten
atomically and deterministically (sorted keys, two-space indent, trailing newline), so a reader
never sees half a file and an unchanged config always has unchanged bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..calibration_config import CalibrationConfig, describe
from ..errors import VolSurfaceConfigError

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class BandMultiplier(BaseModel):
    """The IV multiplier used for options whose DTE lies in [min_dte, max_dte]."""

    model_config = _STRICT
    min_dte: int = Field(ge=0)
    max_dte: int = Field(ge=0)
    iv_multiplier: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> BandMultiplier:
        if self.min_dte > self.max_dte:
            raise ValueError(f"min_dte ({self.min_dte}) is larger than max_dte ({self.max_dte})")
        return self


class VolSurfaceConfig(BaseModel):
    """What the pricing model reads at start-up; calibration proposes new multipliers for it."""

    model_config = _STRICT
    iv_multiplier: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    bands: dict[str, BandMultiplier] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> VolSurfaceConfig:
        if "global" in self.bands or "" in self.bands:
            raise ValueError("a band cannot be named 'global' or ''")
        ranked = sorted(self.bands.items(), key=lambda item: item[1].min_dte)
        for (name_a, a), (name_b, b) in pairwise(ranked):
            if b.min_dte <= a.max_dte:
                raise ValueError(f"bands {name_a!r} and {name_b!r} overlap; each DTE may belong to one band only")
        return self

    @classmethod
    def load(cls, path: str | Path) -> VolSurfaceConfig:
        """Read and validate the file, explaining in one sentence what is wrong if it cannot be used."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise VolSurfaceConfigError(
                f"No vol surface config at {path}; pass --config or copy examples/options_agent/config/vol_surface.json there."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VolSurfaceConfigError(f"Cannot read the vol surface config {path} ({exc}).") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VolSurfaceConfigError(
                f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); fix or restore it."
            ) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise VolSurfaceConfigError(f"{path} is not a valid vol surface config: {describe(exc)}.") from None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Replace the file atomically: temp file in the same folder, fsync, rename, fsync the folder."""
        path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
        except OSError as exc:
            raise VolSurfaceConfigError(
                f"Cannot write the vol surface config {path} ({exc.strerror or exc})."
            ) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def multipliers(self) -> dict[str, float]:
        """``{"global": x, "<band>": y, ...}``: the numbers a calibration may change."""
        return {"global": self.iv_multiplier, **{name: b.iv_multiplier for name, b in self.bands.items()}}

    def multiplier_for_dte(self, dte: int) -> float:
        """The multiplier the model applies at ``dte``: its band's, else the global one."""
        band = next((b for b in self.bands.values() if b.min_dte <= dte <= b.max_dte), None)
        return band.iv_multiplier if band else self.iv_multiplier

    def with_multipliers(
        self, values: dict[str, float], calibration: CalibrationConfig | None = None
    ) -> VolSurfaceConfig:
        """A copy with ``values`` applied; a new band takes its DTE range from ``calibration``."""
        data: dict[str, Any] = self.model_dump()
        for name, value in values.items():
            if name == "global":
                data["iv_multiplier"] = value
            elif name in data["bands"]:
                data["bands"][name]["iv_multiplier"] = value
            elif calibration is not None and name in calibration.bands:
                band = calibration.bands[name]
                data["bands"][name] = {"min_dte": band.min_dte, "max_dte": band.max_dte, "iv_multiplier": value}
            else:
                raise VolSurfaceConfigError(
                    f"The vol surface has no band {name!r} and no DTE range is known for it; add it to the "
                    "calibration config's bands or to the vol surface file first."
                )
        try:
            return VolSurfaceConfig.model_validate(data)
        except ValidationError as exc:
            raise VolSurfaceConfigError(
                f"The new multipliers do not make a valid vol surface: {describe(exc)}."
            ) from None
