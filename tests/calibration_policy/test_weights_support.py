"""Shared builders for the scoring-weights tests (no tests of its own).

Trade tables are built the way the bundled generator builds them — scores in [0, 1], PnL a
known linear effect of some factors plus noise — so each test knows which factor should win.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from calibration_policy.default_plugins.scoring_weights.domain import FACTORS

EQUAL = {"wallet": 0.25, "cluster": 0.25, "token": 0.25, "context": 0.25}
EFFECTS = {"wallet": 300.0, "cluster": 100.0, "token": 0.0, "context": 30.0}
START = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)


def make_trades(
    n: int = 400,
    seed: int = 1,
    effects: dict[str, float] | None = None,
    noise: float = 60.0,
    start: datetime | pd.Timestamp = START,
    with_time: bool = True,
) -> pd.DataFrame:
    """``n`` trades, one an hour from ``start``; PnL = Σ effect × (score − 0.5) + noise."""
    effects = EFFECTS if effects is None else effects
    rng = np.random.default_rng(seed)
    scores = {f: rng.uniform(0.0, 1.0, n).round(4) for f in FACTORS}
    pnl = rng.normal(0.0, noise, n) + sum(effects.get(f, 0.0) * (scores[f] - 0.5) for f in FACTORS)
    frame = pd.DataFrame({f"{f}_score": scores[f] for f in FACTORS})
    frame["pnl"] = pnl.round(2)
    frame["win"] = frame["pnl"] > 0
    if with_time:
        frame["closed_at"] = pd.date_range(start, periods=n, freq="h", tz="UTC")
    return frame


def write_weights(path: Path, weights: dict[str, float] | None = None) -> Path:
    path.write_text(json.dumps(weights or EQUAL))
    return path


def read_weights(path: Path) -> dict[str, float]:
    return json.loads(path.read_text())
