"""The batch-first engine (issue 26): each figure beside its baseline, measured in the same loop.

    nice python benchmarks/bench_engine.py                      # the issue's sizes
    nice python benchmarks/bench_engine.py --backfill 1000 --records 150   # the docs' figures (1,000 candidates)
    nice python benchmarks/bench_engine.py --underlyings 50 --candidates 200 --backfill 5000   # quicker
    nice python benchmarks/bench_engine.py --writes-only --backfill 1000 --records 300   # the write paths alone, 3 times each

Every ratio alternates the measured path and its baseline in one loop (A, B, A, B, …) and compares
the best of each, so a burst of load on the shared machine hits both. Sizes are printed as generated.

- ``replay``: :func:`calibration_policy.replay.replay` of the default policy over ``--underlyings`` ×
  ``--days`` synthetic daily runs (benchmarks/bench_lab.py's generator), against a plain numpy version
  of the default policy written here (EWMA over each 14-day window as one matrix product, then a
  Python loop for the live value); both must decide the same number of applies (asserted).
- ``replay_plugin``: the same with a host rule that has no batch form (asked run by run).
- ``tune``: ``--candidates`` threshold candidates (min_delta_global × min_delta_band, a grid over
  0.005–0.06) over all runs, the smoothing shared; the seconds per candidate and what 1,000 would take
  at that rate (the issue's goal: 1,000 in 30 s), beside one replay of the default policy alone
  (smoothing included) in the same loop.
- ``backfill``: ``--backfill`` records, each followed by a load of the newest 50, into a new folder,
  against the same loop on SQLite (WAL, synchronous=FULL), alternating in chunks of 500.
- ``record``: one run recorded into a history, against a bare durable write (write, fsync, link,
  directory fsync), alternating run by run.

Writes ``benchmarks/results_engine.json`` with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_lab import START_VALUES, synthetic_runs

SCOPES = ("global", "weekly", "monthly")


# -- the numpy reference of the default policy ---------------------------------------------------


def numpy_reference(groups, policy) -> int:
    """The default policy (thin runs out of the smoothing, EWMA half-life 7 days over 14 days, sample
    and vega gates, bounds 0.25–4, min_delta 0.03) in plain numpy and a Python loop; the applies."""
    import numpy as np

    applies = 0
    half_life = 7.0 * 86_400.0
    window = policy.smoothing_window_days * 86_400.0
    for runs in groups.values():
        t = np.array([r.timestamp.timestamp() for r in runs])
        v = np.array([[r.recommended_iv_multiplier[s] for s in SCOPES] for r in runs])
        sample = np.array([r.sample_size for r in runs], dtype=float)
        vega = np.array([r.vega_sum for r in runs], dtype=float)
        ok = (sample >= policy.min_sample_size) & (vega >= policy.min_vega_sum)
        age = t[:, None] - t[None, :]  # row i: the age of run j at run i
        inside = (age >= 0) & (age <= window) & np.tril(np.ones((len(t), len(t)), dtype=bool), -1) & ok[None, :]
        np.fill_diagonal(inside, True)
        weights = np.where(inside, np.power(0.5, np.where(inside, age, 0.0) / half_life), 0.0)
        smoothed = (weights @ v) / weights.sum(axis=1, keepdims=True)
        thresholds = np.array([policy.min_delta_global, policy.min_delta_band, policy.min_delta_band]) - 1e-9
        live = np.array([START_VALUES[s] for s in SCOPES])
        inside_bounds = ((smoothed >= 0.25) & (smoothed <= 4.0)).all(axis=1)
        for i in np.flatnonzero(ok & inside_bounds).tolist():
            if (np.abs(smoothed[i] - live) >= thresholds).any():
                live = smoothed[i]
                applies += 1
    return applies


# -- helpers ---------------------------------------------------------------------------------------


def interleaved(a, b, repeat: int) -> tuple[float, float, object, object]:
    """Best wall time of ``a`` and of ``b``, run alternately ``repeat`` times each."""
    best_a = best_b = float("inf")
    value_a = value_b = None
    for _ in range(repeat):
        t = time.perf_counter()
        value_a = a()
        best_a = min(best_a, time.perf_counter() - t)
        t = time.perf_counter()
        value_b = b()
        best_b = min(best_b, time.perf_counter() - t)
    return best_a, best_b, value_a, value_b


def group(runs):
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(run.underlying, []).append(run)
    return groups


def plugin_rule():
    """A host rule without a batch form: no scope may move more than 12% of its live value at once."""
    from calibration_policy.hookspecs import hookimpl
    from calibration_policy.models import RuleVerdict
    from calibration_policy.plugins import get_plugin_manager
    from calibration_policy.specs import Rule

    def no_big_jump(ctx):
        worst = max(
            (abs(new - ctx.current[s]) / ctx.current[s] for s, new in ctx.proposed.items() if ctx.current.get(s)),
            default=0.0,
        )
        return RuleVerdict("no_big_jump", worst <= 0.12, f"largest move {worst:.1%}", {"worst": worst})

    class Host:
        @hookimpl
        def register_rules(self, register):
            register(Rule("no_big_jump", no_big_jump, "No big jump"))

    get_plugin_manager().register(Host(), name="bench_host")


# -- the write paths -------------------------------------------------------------------------------


def backfill(count: int, chunk: int = 500) -> tuple[float, float]:
    """``count`` records each followed by a load of the newest 50, into a new folder, against SQLite (WAL,
    synchronous=FULL) doing the same: one INSERT, then the newest 50 as the same models."""
    from calibration_policy.history import HistoryStore, build_run
    from calibration_policy.models import CalibrationRun

    sys.path.insert(0, str(HERE.parent / "tests" / "calibration_policy"))
    from conftest import build_result

    root = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    store = HistoryStore(root / "runs")
    db = sqlite3.connect(root / "runs.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE runs (underlying TEXT, stamp TEXT, body TEXT, PRIMARY KEY (underlying, stamp))")
    start = datetime(2020, 1, 1, 21, tzinfo=UTC)
    ours = theirs = 0.0
    done = 0
    try:
        while done < count:
            n = min(chunk, count - done)
            runs = [
                build_run(
                    build_result(global_m=1.0 + (done + k) % 97 / 1000),
                    "SPY",
                    "live",
                    timestamp=start + timedelta(hours=done + k),
                )
                for k in range(n)
            ]
            t = time.perf_counter()
            for run in runs:
                store.record(run)
                store.latest("SPY", 50)
            ours += time.perf_counter() - t
            bodies = [(run.timestamp.isoformat(), run.model_dump_json()) for run in runs]
            t = time.perf_counter()
            for stamp, body in bodies:
                db.execute("INSERT INTO runs VALUES ('SPY', ?, ?)", (stamp, body))
                [  # the same pydantic models our load returns, as the million table's SQLite baseline builds
                    CalibrationRun.model_validate_json(b)
                    for (b,) in db.execute(
                        "SELECT body FROM runs WHERE underlying = 'SPY' ORDER BY stamp DESC LIMIT 50"
                    )
                ]
            theirs += time.perf_counter() - t
            done += n
    finally:
        db.close()
        shutil.rmtree(root, ignore_errors=True)
    return ours, theirs


def record_vs_bare_write(count: int) -> tuple[float, float]:
    """Median of one record against a bare durable write of the same bytes, alternating."""
    import statistics

    from calibration_policy.history import HistoryStore, build_run

    sys.path.insert(0, str(HERE.parent / "tests" / "calibration_policy"))
    from conftest import build_result

    root = Path(tempfile.mkdtemp(prefix="bench-record-"))
    store = HistoryStore(root / "runs")
    bare = root / "bare"
    bare.mkdir()
    start = datetime(2020, 1, 1, 21, tzinfo=UTC)
    for k in range(200):  # a history to record into, its index built and trusted
        store.record(build_run(build_result(), "SPY", "live", timestamp=start + timedelta(hours=k)))
    store.latest("SPY")
    time.sleep(0.3)
    store.latest("SPY")
    ours, theirs = [], []
    try:
        for k in range(count):
            run = build_run(
                build_result(global_m=1.0 + k / 1000), "SPY", "live", timestamp=start + timedelta(days=30, hours=k)
            )
            t = time.perf_counter()
            store.record(run)
            ours.append(time.perf_counter() - t)
            payload = run.model_dump_json().encode()
            t = time.perf_counter()
            tmp = bare / f".tmp-{k}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.link(tmp, bare / f"{k}.json")
            os.unlink(tmp)
            dfd = os.open(bare, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            theirs.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return statistics.median(ours), statistics.median(theirs)


def writes_only(args: argparse.Namespace, load_before: tuple[float, float, float]) -> None:
    """The two write paths alone, each with the load average beside it (nothing written)."""
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        backfill_s, sqlite_s = backfill(args.backfill)
        print(
            f"backfill {args.backfill:,} record+load  {backfill_s:8.3f} s   SQLite WAL/FULL {sqlite_s:8.3f} s   "
            f"{backfill_s / sqlite_s:5.2f}×  (goal ≤ 2×)   load {load:.2f} → {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        record_s, bare_s = record_vs_bare_write(args.records)
        print(
            f"record one run (median of {args.records})  {record_s * 1000:7.3f} ms  bare durable write "
            f"{bare_s * 1000:7.3f} ms  {record_s / bare_s:5.2f}×  (goal ≤ 1.5×)   load {load:.2f} → "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--underlyings", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--backfill", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results_engine.json")
    parser.add_argument(
        "--writes-only", action="store_true", help="only the backfill and the record (no replay, no tune); prints only"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    if args.writes_only:
        return writes_only(args, load_before)

    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.lab import tune
    from calibration_policy.replay import replay

    policy = CalibrationUpdatePolicy()
    runs = synthetic_runs(args.underlyings, args.days)
    groups = group(runs)
    replay(groups["U000"], policy, START_VALUES)  # warm the imports and the plugin manager
    engine_s, reference_s, result, reference_applies = interleaved(
        lambda: replay(runs, policy, START_VALUES), lambda: numpy_reference(groups, policy), args.repeat
    )
    assert result.applies == reference_applies, f"engine {result.applies} applies, reference {reference_applies}"
    print(
        f"generated {len(runs):,} runs ({args.underlyings} underlyings × {args.days} days); load {load_before[0]:.2f}"
    )
    print(
        f"replay, default policy          {engine_s:7.3f} s   numpy reference {reference_s:7.3f} s   "
        f"{engine_s / reference_s:5.2f}×  (goal ≤ 2×; {result.applies:,} applies each)"
    )

    plugin_rule()
    with_plugin = policy.model_copy(update={"rules": (*policy.rules, "no_big_jump")})
    plugin_s, reference2_s, plugin_result, _ = interleaved(
        lambda: replay(runs, with_plugin, START_VALUES), lambda: numpy_reference(groups, policy), args.repeat
    )
    print(
        f"replay, + a rule without batch  {plugin_s:7.3f} s   numpy reference {reference2_s:7.3f} s   "
        f"{plugin_s / reference2_s:5.2f}×  (goal ≤ 15×)"
    )

    space = {"min_delta_global": (0.005, 0.06), "min_delta_band": (0.005, 0.06)}
    tune_s, alone_s, tuned, _ = interleaved(  # once each: the tune is long
        lambda: tune(runs, policy, space, n=args.candidates, start_values=START_VALUES),
        lambda: replay(runs, policy, START_VALUES),
        1,
    )
    per_candidate = tune_s / len(tuned.candidates)
    mean_applies = sum(c.figures.applies for c in tuned.candidates) / len(tuned.candidates)
    print(
        f"tune, {len(tuned.candidates):,} candidates × {len(runs):,} runs   {tune_s:7.3f} s   "
        f"{per_candidate:.3f} s a candidate ({mean_applies:,.0f} applies on average), 1,000 ≈ "
        f"{per_candidate * 1000:,.0f} s (goal ≤ 30 s); one replay alone {alone_s:.3f} s"
    )

    backfill_s, sqlite_s = backfill(args.backfill)
    print(
        f"backfill {args.backfill:,} record+load        {backfill_s:7.3f} s   SQLite WAL/FULL {sqlite_s:7.3f} s   "
        f"{backfill_s / sqlite_s:5.2f}×  (goal ≤ 2×)"
    )
    record_s, bare_s = record_vs_bare_write(args.records)
    print(
        f"record one run (median)         {record_s * 1000:7.3f} ms  bare durable write {bare_s * 1000:7.3f} ms  "
        f"{record_s / bare_s:5.2f}×  (goal ≤ 1.5×)"
    )
    load_after = os.getloadavg()
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "generated": {"runs": len(runs), "underlyings": args.underlyings, "days": args.days,
                      "candidates": args.candidates, "backfill_records": args.backfill, "records": args.records},
        "replay": {"seconds": round(engine_s, 3), "numpy_reference_seconds": round(reference_s, 3),
                   "ratio": round(engine_s / reference_s, 2), "applies": result.applies, "goal_ratio": 2},
        "replay_plugin_rule_without_batch": {"seconds": round(plugin_s, 3), "numpy_reference_seconds": round(reference2_s, 3),
                                             "ratio": round(plugin_s / reference2_s, 2), "applies": plugin_result.applies, "goal_ratio": 15},
        "tune": {"seconds": round(tune_s, 3), "candidates": len(tuned.candidates), "seconds_per_candidate": round(per_candidate, 4),
                 "seconds_for_1000_at_that_rate": round(per_candidate * 1000, 1), "mean_applies": round(mean_applies),
                 "one_replay_alone_seconds": round(alone_s, 3), "goal_seconds": 30},
        "backfill": {"seconds": round(backfill_s, 3), "sqlite_seconds": round(sqlite_s, 3),
                     "ratio": round(backfill_s / sqlite_s, 2), "goal_ratio": 2},
        "record": {"median_ms": round(record_s * 1000, 3), "bare_write_median_ms": round(bare_s * 1000, 3),
                   "ratio": round(record_s / bare_s, 2), "goal_ratio": 1.5},
    }  # fmt: skip
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
