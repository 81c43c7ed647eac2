"""Built-in smoothing strategies: time-aware EWMA and rolling median."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from calibration_policy.hookspecs import hookimpl
from calibration_policy.specs import Smoother

if TYPE_CHECKING:
    import pandas as pd


class EwmaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    half_life_days: PositiveFloat = Field(7.0, le=36_500)  # beyond 100 years pandas cannot build the Timedelta


def ewma(series: pd.Series, options: EwmaOptions) -> float:
    """Exponentially weighted mean where weight halves every ``half_life_days`` of age.

    Weights come from the timestamps, not the row count, so a missing day or an irregular gap
    weighs exactly as much as the elapsed time says.
    """
    import pandas as pd

    smoothed = series.ewm(halflife=pd.Timedelta(days=options.half_life_days), times=series.index).mean()
    return float(smoothed.iloc[-1])


def rolling_median(series: pd.Series, options: None) -> float:
    """Median of the window: one wild day cannot move it at all."""
    return float(series.median())


@hookimpl
def register_smoothers(register):
    register(Smoother("ewma", ewma, "Exponentially weighted average",
                      "Recent runs count more; a run's weight halves every half_life_days of age.", options=EwmaOptions))
    register(Smoother("rolling_median", rolling_median, "Rolling median", "The median of the window; one wild day cannot move it."))
