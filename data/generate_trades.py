"""Write the bundled trade results to ``data/trades.parquet`` for the scoring-weights analysis.

One row per candidate trade the scoring model rated (taken or not, with its paper outcome), so
re-scoring with other weights can say which trades they would have taken. The data hides a known
truth: the **wallet** score drives PnL, **cluster** helps a little, **context** barely, and the
**token** score is pure noise. An analysis should therefore move weight from token toward wallet.

Columns: ``trade_id`` (T00001…), ``closed_at`` (UTC), ``wallet_score``, ``cluster_score``,
``token_score``, ``context_score`` (each in [0, 1], 4 decimals), ``pnl`` (USD, 2 decimals) and
``win`` (pnl > 0).

Output is deterministic: one fixed seed, and pyarrow writes with fixed settings and no pandas
metadata or timestamps, so running the script twice gives byte-identical files (with the same
numpy and pyarrow versions). Run from anywhere: ``python data/generate_trades.py``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

# One deterministic Parquet writer for all bundled data (same table, same bytes).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_sample_data import write_table

SEED = 20251201
N_TRADES = 600
FIRST_CLOSE = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)
LAST_CLOSE = datetime(2025, 11, 28, 21, 0, tzinfo=UTC)
DEFAULT_OUT = Path(__file__).resolve().parent / "trades.parquet"

# USD of PnL per unit of (score − 0.5): the hidden truth the analysis should recover.
TRUE_EFFECT = {"wallet": 400.0, "cluster": 120.0, "token": 0.0, "context": 40.0}
NOISE_USD = 90.0


def make_trades(n: int = N_TRADES, seed: int = SEED) -> pa.Table:
    """The trades table: scores drawn from Beta(2, 2), PnL from the true effects plus noise."""
    rng = np.random.default_rng(seed)
    scores = {factor: np.round(rng.beta(2.0, 2.0, n), 4) for factor in TRUE_EFFECT}
    pnl = rng.normal(0.0, NOISE_USD, n)
    for factor, effect in TRUE_EFFECT.items():
        pnl += effect * (scores[factor] - 0.5)
    pnl = np.round(pnl, 2)
    span = (LAST_CLOSE - FIRST_CLOSE).total_seconds()
    offsets = np.sort(rng.uniform(0.0, span, n)).round()
    closed = [FIRST_CLOSE + timedelta(seconds=float(s)) for s in offsets]
    return pa.table(
        {
            "trade_id": pa.array([f"T{i + 1:05d}" for i in range(n)], pa.string()),
            "closed_at": pa.array(closed, pa.timestamp("us", tz="UTC")),
            **{f"{factor}_score": pa.array(values, pa.float64()) for factor, values in scores.items()},
            "pnl": pa.array(pnl, pa.float64()),
            "win": pa.array(pnl > 0, pa.bool_()),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: data/trades.parquet)")
    parser.add_argument("--trades", type=int, default=N_TRADES, help=f"how many trades (default {N_TRADES})")
    args = parser.parse_args(argv)
    table = make_trades(args.trades)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, args.out)
    wins = sum(table.column("win").to_pylist())
    print(f"Wrote {table.num_rows} trades ({wins} winners) to {args.out}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
