"""How often auto mode applies scoring weights on noise, per decision and per stream, and its power.

    python benchmarks/bench_weights_gate.py                 # 1,000 shuffles, 150 noise streams, 3 × 50 planted
    python benchmarks/bench_weights_gate.py --quick         # a smoke run: a few of each, 3 looks per stream
    python benchmarks/bench_weights_gate.py --shuffles 400 --streams 150 --power-streams 30 --json out.json

Everything goes through the public auto path, ``flow.run_auto`` with ``AutoSettings(enabled=True)``
(the defaults: bounded step 0.1, out-of-sample gate "both" at equal volume, 1,000 shuffles, a 5 %
budget per stream over 13 looks) and the default weights policy (ewma smoothing over 14 days), each
case in fresh folders with live weights 0.25 each:

* **per decision**: the bundled trades (``data/trades.parquet``) with their outcomes (PnL and win
  together) shuffled across trades, one auto step each — noise with the bundled scores;
* **per stream**: trades made as ``data/generate_trades.py`` makes them (Beta(2, 2) scores, normal
  noise of 90) with no effect at all; auto mode runs every 100 new trades from 300 to 1,500 (13 looks,
  one a day), as a cron job would; a stream counts once if any look applied;
* **power**: the same streams with a planted wallet effect sized for a correlation r with PnL of
  about 0.15, 0.25 and 0.35; the share of streams where auto mode applied at least once, and where the
  first look already did.

Each rate is printed with its exact 95 % Clopper-Pearson interval (the binomial tail inverted by
bisection; scipy is not needed). This is a measurement of the gate, not a unit test: the unit tests
keep fast checks of each rule, this shows the rates the README quotes and how sure they are.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from calibration_policy import Context
from calibration_policy.default_plugins.scoring_weights.domain import FACTORS, weights_target
from calibration_policy.default_plugins.scoring_weights.flow import run_auto
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings

BUNDLED = REPO / "data" / "trades.parquet"
EQUAL = {factor: 0.25 for factor in FACTORS}
NOISE_USD = 90.0  # as data/generate_trades.py
SCORE_SD = math.sqrt(1 / 20)  # Beta(2, 2)
START = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)


# -- exact binomial intervals ---------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def _crossing(above, lo: float = 0.0, hi: float = 1.0) -> float:
    """The p in [lo, hi] where ``above(p)`` turns from True to False (bisection to float precision)."""
    for _ in range(200):
        middle = (lo + hi) / 2
        if middle in (lo, hi):
            break
        lo, hi = (middle, hi) if above(middle) else (lo, middle)
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact interval: the p at which each binomial tail beyond k holds (1 − confidence) / 2."""
    tail = (1 - confidence) / 2
    # Low end: P(X ≥ k; p) rises with p; below the low end it is under the tail.
    low = 0.0 if k == 0 else _crossing(lambda p: 1 - binomial_cdf(k - 1, n, p) < tail)
    # High end: P(X ≤ k; p) falls with p; below the high end it is over the tail.
    high = 1.0 if k == n else _crossing(lambda p: binomial_cdf(k, n, p) > tail)
    return low, high


@dataclass(frozen=True)
class Rate:
    name: str
    hits: int
    cases: int

    @property
    def share(self) -> float:
        return self.hits / self.cases if self.cases else float("nan")

    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.hits, self.cases)

    def row(self) -> str:
        low, high = self.interval()
        return (
            f"{self.name:<52}{self.hits:>6,} of {self.cases:<6,}{self.share * 100:>7.1f} %"
            f"   {low * 100:>5.1f}–{high * 100:.1f} %"
        )

    def to_dict(self) -> dict[str, object]:
        low, high = self.interval()
        return {"name": self.name, "hits": self.hits, "cases": self.cases, "rate": self.share, "low": low, "high": high}


# -- trades ----------------------------------------------------------------------------------------------


def effect_for(r: float) -> float:
    """USD per unit of (score − 0.5) that gives a correlation r between the wallet score and PnL."""
    return NOISE_USD * r / (SCORE_SD * math.sqrt(1 - r * r))


def stream_trades(n: int, seed: int, wallet_effect: float = 0.0) -> pd.DataFrame:
    """``n`` trades as the bundled generator makes them, one every 2 hours, with ids."""
    rng = np.random.default_rng([seed, 25])
    scores = {f: np.round(rng.beta(2.0, 2.0, n), 4) for f in FACTORS}
    pnl = np.round(rng.normal(0.0, NOISE_USD, n) + wallet_effect * (scores["wallet"] - 0.5), 2)
    frame = pd.DataFrame({f"{f}_score": scores[f] for f in FACTORS})
    frame["pnl"] = pnl
    frame["win"] = pnl > 0
    frame["closed_at"] = pd.date_range("2025-06-01", periods=n, freq="2h", tz="UTC")
    frame["trade_id"] = [f"S{seed}-{i:05d}" for i in range(n)]
    return frame


def shuffled_bundled(seed: int) -> pd.DataFrame:
    trades = pd.read_parquet(BUNDLED)
    order = np.random.default_rng([seed, 52]).permutation(len(trades))
    for column in ("pnl", "win"):
        trades[column] = trades[column].to_numpy()[order]
    return trades


# -- the auto path ---------------------------------------------------------------------------------------


def _folders(root: Path) -> dict[str, Path]:
    return {"history_dir": root / "runs", "suggestions_dir": root / "sugg", "archive_dir": root / "archive"}


def one_decision(trades: pd.DataFrame, root: Path) -> str:
    root.mkdir(parents=True)
    (root / "w.json").write_text(json.dumps(EQUAL))
    outcome = run_auto(
        trades,
        weights_target(path=root / "w.json"),
        AutoSettings(enabled=True),
        context=Context.build(**_folders(root)),
    )
    return outcome.action


def one_stream(trades: pd.DataFrame, looks: int, root: Path) -> tuple[int | None, int]:
    """Auto mode every 100 new trades from 300 on; the look that first applied (None: none did), looks run."""
    root.mkdir(parents=True)
    (root / "w.json").write_text(json.dumps(EQUAL))
    target, settings = weights_target(path=root / "w.json"), AutoSettings(enabled=True)
    for look in range(looks):
        upto = 300 + 100 * look
        outcome = run_auto(
            trades.iloc[:upto],
            target,
            settings,
            timestamp=START + timedelta(days=look),
            context=Context.build(**_folders(root)),
        )
        if outcome.action == "applied":
            return look + 1, look + 1
    return None, looks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=1000, help="shuffles of the bundled outcomes (default 1,000)")
    parser.add_argument("--streams", type=int, default=150, help="noise streams (default 150)")
    parser.add_argument("--power-streams", type=int, default=50, help="streams per planted effect (default 50)")
    parser.add_argument("--looks", type=int, default=13, help="looks per stream (default 13: 300 → 1,500 trades)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 shuffles, 2 streams of 3 looks, 1 each")
    parser.add_argument("--json", "--out", dest="json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.shuffles, args.streams, args.power_streams, args.looks = 4, 2, 1, 3
    print(
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}, "
        f"pandas {pd.__version__}; auto mode's defaults (bound 0.1, gate both, 1,000 shuffles, 5 % over 13 looks)"
    )
    started = time.perf_counter()
    rates: list[Rate] = []
    timings: dict[str, float] = {}
    print(f"\n{'Rate':<52}{'cases':>14}{'rate':>9}   95 % interval (Clopper-Pearson)", flush=True)

    def report(rate: Rate) -> None:  # each row as soon as it is measured: a long run shows its progress
        rates.append(rate)
        print(rate.row(), flush=True)

    memory = Path("/dev/shm")  # the runs' fsyncs cost nothing there; the figures are the same
    with tempfile.TemporaryDirectory(dir=memory if memory.is_dir() else None) as folder:
        root = Path(folder)
        if args.shuffles:
            begin = time.perf_counter()
            actions = [one_decision(shuffled_bundled(seed), root / f"shuffle-{seed}") for seed in range(args.shuffles)]
            timings["shuffles_s"] = time.perf_counter() - begin
            report(Rate("Noise applied, one decision (bundled, shuffled)", actions.count("applied"), len(actions)))
        if args.streams:
            begin = time.perf_counter()
            noise = [
                one_stream(stream_trades(1500, seed), args.looks, root / f"noise-{seed}")
                for seed in range(args.streams)
            ]
            timings["streams_s"] = time.perf_counter() - begin
            hits = sum(a is not None for a, _ in noise)
            report(Rate(f"Noise ever applied, one stream ({args.looks} looks)", hits, len(noise)))
            report(Rate("Noise applied, per look", hits, sum(n for _, n in noise)))
        if args.power_streams:
            begin = time.perf_counter()
            for r in (0.15, 0.25, 0.35):
                effect = effect_for(r)
                found = [
                    one_stream(stream_trades(1500, 10_000 + seed, effect), args.looks, root / f"power-{r}-{seed}")
                    for seed in range(args.power_streams)
                ]
                within = sum(a is not None for a, _ in found)
                report(Rate(f"Power, r ≈ {r:.2f}: applied within {args.looks} looks", within, len(found)))
                report(
                    Rate(f"Power, r ≈ {r:.2f}: applied at the first look", sum(a == 1 for a, _ in found), len(found))
                )
            timings["power_s"] = time.perf_counter() - begin

    total = time.perf_counter() - started
    print(f"\n{total:,.0f} s in all ({', '.join(f'{k[:-2]} {v:,.0f} s' for k, v in timings.items())}).")
    per_stream = [rate for rate in rates if rate.name.startswith("Noise ever applied")]
    if per_stream:
        high = per_stream[0].interval()[1]
        print(
            f"Goal: the per-stream interval's upper end ≤ 5 %: {high * 100:.1f} % "
            f"({'met' if high <= 0.05 else 'NOT MET at this size'})."
        )
    if args.json:
        settings = {"shuffles": args.shuffles, "streams": args.streams, "power_streams": args.power_streams}
        args.json.write_text(
            json.dumps(
                {
                    "settings": {**settings, "looks": args.looks, "quick": args.quick},
                    "rates": [rate.to_dict() for rate in rates],
                    "seconds": {k: round(v, 1) for k, v in timings.items()},
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
