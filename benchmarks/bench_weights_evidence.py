"""Out-of-sample evidence for scoring weights: the vectorised evaluation beside a plain loop.

    python benchmarks/bench_weights_evidence.py            # 600 and 100,000 trades
    python benchmarks/bench_weights_evidence.py --quick    # 600 and 10,000 trades
    python benchmarks/bench_weights_evidence.py --sizes 600 20000 --repeat 3

The full evaluation (``evidence.evaluate``: 4 folds, expanding window, 1,000 bootstrap
resamples, 200 shuffles of the outcomes, threshold 0.6, live weights 0.25 each) is timed on
synthetic trades made as ``data/generate_trades.py`` makes the bundled ones (its ``make_trades``
with its seed: Beta(2, 2) scores, PnL = planted effects + noise). That generator rounds close
times to the second, so at 100,000 trades over three months some trades share a second; the
benchmark adds i microseconds to trade i so every close time is distinct (the order is unchanged).

Beside it, in the same run, :func:`evaluate_loop` computes the same figures the straightforward
way: one shuffled copy of the table per permutation, the library's own ``factor_stats`` /
``suggest_from`` (/ ``bounded_weights``) / ``estimate_improvement`` per fold and per
permutation, and one Python iteration per bootstrap resample. Both draw the same shuffles and
the same resamples (``permutation_chunks`` / ``bootstrap_chunks``), so their results must agree;
the benchmark checks that they do before it prints the table. Wall clock, ``time.perf_counter``,
best of ``--repeat`` runs, the trades already in memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from calibration_policy.default_plugins.scoring_weights import evidence as ev
from calibration_policy.default_plugins.scoring_weights.analysis import (
    PNL_COLUMN,
    TRADING_THRESHOLD,
    WIN_COLUMN,
    estimate_improvement,
)
from calibration_policy.default_plugins.scoring_weights.domain import FACTORS

EQUAL = {factor: 0.25 for factor in FACTORS}
GOALS_S = {600: 2.0, 100_000: 30.0}  # the goals for the full evaluation
SETTINGS = {"folds": 4, "resamples": 1000, "permutations": 200, "seed": 0}


def synthetic_trades(n: int, seed: int | None = None) -> pd.DataFrame:
    """``n`` trades from the bundled generator (its seed unless given), close times made distinct."""
    spec = importlib.util.spec_from_file_location("generate_trades", REPO / "data" / "generate_trades.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    frame = module.make_trades(n, module.SEED if seed is None else seed).to_pandas()
    frame["closed_at"] = frame["closed_at"] + pd.to_timedelta(np.arange(n), unit="us")
    return frame


# -- the plain loop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopResult:
    gains: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    shuffled_gains: dict[str, np.ndarray]
    p_values: dict[str, float]
    in_sample_pct: float | None
    shuffled_in_sample_mean_pct: float | None
    shuffled_in_sample_clear_share: float


def evaluate_loop(
    trades: pd.DataFrame,
    current: dict[str, float],
    *,
    folds: int = 4,
    resamples: int = 1000,
    permutations: int = 200,
    seed: int = 0,
    window: ev.Window = "expanding",
    train_blocks: int = 1,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    min_trades_per_fold: int = 50,
    confidence: float = 0.9,
    bar_pct: float = 2.0,
) -> LoopResult:
    """The same evaluation written the obvious way: loops over permutations, folds and resamples."""
    data = ev._prepare(
        trades,
        current,
        folds=folds,
        window=window,
        train_blocks=train_blocks,
        threshold=threshold,
        max_change=max_change,
        min_trades_per_fold=min_trades_per_fold,
    )
    frame = data.frame

    def walk(table: pd.DataFrame) -> tuple[dict[str, float], list[dict[str, np.ndarray]]]:
        gains, parts = {m: 0.0 for m in ev.MEASURES}, []
        pnl = table[PNL_COLUMN].to_numpy()
        win = table[WIN_COLUMN].to_numpy()
        for fold in range(data.folds):
            lo, hi = data.train_rows(fold)
            fitted = ev.fit_weights(table.iloc[lo:hi], data.current, data.max_change)
            a, b = data.test_rows(fold)
            result, contributions = ev._compare(
                data.scores[a:b],
                pnl[a:b],
                win[a:b],
                data.current_vector,
                np.array([fitted[f] for f in FACTORS]),
                data.threshold,
            )
            for m in ev.MEASURES:
                gains[m] += result.gain(m)
            parts.append(contributions)
        return gains, parts

    def in_sample_pct(table: pd.DataFrame) -> tuple[float | None, bool]:
        fitted = ev.fit_weights(table, data.current, data.max_change)
        improvement = estimate_improvement(table, data.current, fitted, data.threshold)
        return improvement.pct, improvement.clears(bar_pct)

    gains, parts = walk(frame)

    # Bootstrap: one Python iteration per resample and fold, over the same draws as the vectorised sum.
    parts = ev._nonzero({m: tuple(part[m] for part in parts) for m in ev.MEASURES})
    sizes = tuple(b - a for a, b in map(data.test_rows, range(data.folds)))
    samples = {m: [] for m in ev.MEASURES}
    for drawn in ev.bootstrap_draws(sizes, tuple(part.shape[1] for part in parts), resamples, seed):
        starts = [np.concatenate([[0], np.cumsum(counts)]) for counts, _ in drawn]
        for r in range(len(drawn[0][0])):
            for j, m in enumerate(ev.MEASURES):
                total = 0.0
                for part, (_, draws), start in zip(parts, drawn, starts):
                    total += float(part[j, draws[start[r] : start[r + 1]]].sum())
                samples[m].append(total)
    intervals = {
        m: tuple(float(v) for v in np.quantile(samples[m], [(1 - confidence) / 2, (1 + confidence) / 2]))
        for m in ev.MEASURES
    }

    # Shuffles: one shuffled copy of the table per permutation, refitted fold by fold with the library.
    shuffled = {m: [] for m in ev.MEASURES}
    pcts, clears = [], []
    pnl, win = frame[PNL_COLUMN].to_numpy(), frame[WIN_COLUMN].to_numpy()
    for orders in ev.permutation_chunks(len(frame), permutations, seed):
        for order in orders:
            table = frame.copy()
            table[PNL_COLUMN] = pnl[order]
            table[WIN_COLUMN] = win[order]
            permuted_gains, _ = walk(table)
            for m in ev.MEASURES:
                shuffled[m].append(permuted_gains[m])
            pct, clear = in_sample_pct(table)
            pcts.append(np.nan if pct is None else pct)
            clears.append(clear)
    shuffled_arrays = {m: np.array(v) for m, v in shuffled.items()}
    p_values = {m: (1 + int((shuffled_arrays[m] >= gains[m]).sum())) / (1 + permutations) for m in ev.MEASURES}
    defined = np.array(pcts)[np.isfinite(pcts)]
    return LoopResult(
        gains,
        intervals,
        shuffled_arrays,
        p_values,
        in_sample_pct(frame)[0],
        float(defined.mean()) if len(defined) else None,
        float(np.mean(clears)),
    )


def agreement(evidence: ev.Evidence, loop: LoopResult) -> list[str]:
    """Differences between the two implementations beyond float noise (an empty list when they agree)."""
    problems = []
    scale = 1e-6 * max(1.0, float(np.abs(evidence.walk.contributions["equal_volume"][0]).max()))
    for m in ev.MEASURES:
        if abs(evidence.walk.gain(m) - loop.gains[m]) > scale:
            problems.append(f"{m} gain {evidence.walk.gain(m)} vs {loop.gains[m]}")
        interval = evidence.intervals[m]
        if max(abs(interval.low - loop.intervals[m][0]), abs(interval.high - loop.intervals[m][1])) > scale:
            problems.append(f"{m} interval {interval.low, interval.high} vs {loop.intervals[m]}")
        different = int((np.abs(evidence.baseline.shuffled_gains[m] - loop.shuffled_gains[m]) > scale).sum())
        if different:
            problems.append(f"{m}: {different} shuffled gains differ")
        if evidence.baseline.p_value(m) != loop.p_values[m]:
            problems.append(f"{m} p-value {evidence.baseline.p_value(m)} vs {loop.p_values[m]}")
    a, b = evidence.baseline.in_sample_mean_pct, loop.shuffled_in_sample_mean_pct
    if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-9):
        problems.append(f"shuffled in-sample mean {a} vs {b}")
    if evidence.baseline.in_sample_clear_share != loop.shuffled_in_sample_clear_share:
        problems.append("shuffled in-sample clear share differs")
    return problems


# -- the run ------------------------------------------------------------------------------------------


def best_of(fn, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="trade counts (default 600 100000)")
    parser.add_argument("--quick", action="store_true", help="600 and 10,000 trades")
    parser.add_argument(
        "--repeat", type=int, default=0, help="runs per timing, best kept (default 3 up to 10k trades, else 1)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([600, 10_000] if args.quick else [600, 100_000])

    print(
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}, "
        f"pandas {pd.__version__}"
    )
    print(
        f"Full evaluation: {SETTINGS['folds']} folds (expanding), {SETTINGS['resamples']:,} resamples, "
        f"{SETTINGS['permutations']} permutations, seed {SETTINGS['seed']}\n"
    )
    rows = []
    for n in sizes:
        trades = synthetic_trades(n)
        repeat = args.repeat or (3 if n <= 10_000 else 1)
        fast_s, evidence = best_of(lambda: ev.evaluate(trades, EQUAL, **SETTINGS), repeat)
        loop_s, loop = best_of(lambda: evaluate_loop(trades, EQUAL, **SETTINGS), repeat)
        problems = agreement(evidence, loop)
        goal = GOALS_S.get(n)
        rows.append(
            {
                "trades": n,
                "vectorised_s": round(fast_s, 4),
                "loop_s": round(loop_s, 4),
                "speedup": round(loop_s / fast_s, 1),
                "goal_s": goal,
                "met": None if goal is None else fast_s <= goal,
                "agree": not problems,
                "p_value": evidence.baseline.p_value(),
                "gain": round(evidence.walk.gain(), 2),
            }
        )
        if problems:
            print(f"{n:,} trades: the two implementations disagree: " + "; ".join(problems))

    print(
        f"{'Trades':>8}  {'Vectorised':>11}  {'Plain loop':>11}  {'Speed-up':>8}  {'Goal':>7}  {'Met':>8}  {'Same result':>11}"
    )
    for row in rows:
        goal = "–" if row["goal_s"] is None else f"≤ {row['goal_s']:g} s"
        met = "–" if row["met"] is None else ("met" if row["met"] else "NOT MET")
        print(
            f"{row['trades']:>8,}  {row['vectorised_s']:>9.3f} s  {row['loop_s']:>9.3f} s  {row['speedup']:>7.1f}×  "
            f"{goal:>7}  {met:>8}  {'yes' if row['agree'] else 'NO':>11}"
        )
    if args.json:
        machine = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        }
        args.json.write_text(json.dumps({"machine": machine, "settings": SETTINGS, "rows": rows}, indent=2) + "\n")
    return 0 if all(row["agree"] and row["met"] is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
