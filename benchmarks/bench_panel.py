"""How fast the calibration panel answers with a long history (goal: median ≤ 50 ms at 100k runs).

Builds a history of N run files (copies of one real run, each with its own time and a valid
name), then times, warm, through FastAPI's TestClient:

* the whole panel page (``GET /calibration/``) and the ``/api/runs`` page, and
* "latest 10 runs" done by the store (name index) next to a naive glob + parse-everything scan.

    python benchmarks/bench_panel.py [--runs 100000] [--requests 25] [--naive-repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from calibration_policy import Context, UpdateOptions

GOAL_MS = 50.0


def host_result() -> dict:
    bands = {"weekly": (3, 10, 1.07), "monthly": (20, 40, 1.03)}
    return {
        "dropped_count": 37,
        "global_metrics": {
            "n": 412,
            "vega_sum": 12400.0,
            "mae_vol_points": 1.84,
            "vega_weighted_mae_pct": 4.37,
            "recommended_iv_multiplier": 1.05,
        },
        "bands": {
            name: {
                "min_dte": lo,
                "max_dte": hi,
                "n": 206,
                "vega_sum": 6200.0,
                "mae_vol_points": 1.9,
                "recommended_iv_multiplier": m,
            }
            for name, (lo, hi, m) in bands.items()
        },
        "recommended_vol_surface": {"iv_multiplier": 1.05, "bands": {k: v[2] for k, v in bands.items()}},
    }


def build_history(root: Path, runs: int):
    """One real decided run, copied ``runs`` times one minute apart (valid names, valid JSON)."""
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.pipeline import run_update
    from calibration_policy.target import JsonFileTarget

    history, archive, config = root / "calibration_runs", root / "config_archive", root / "vol_surface_SPY.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    start = datetime(2020, 1, 1, tzinfo=UTC)
    outcome = run_update(
        host_result(),
        underlying="SPY",
        source="harvested",
        target=JsonFileTarget(config),
        options=UpdateOptions(timestamp=start),
        context=Context.build(policy=CalibrationUpdatePolicy(), history_dir=history, archive_dir=archive),
    )
    template = (history / f"{outcome.run.run_id}.json").read_text()
    stamp_field = json.dumps(json.loads(template)["timestamp"])
    for i in range(1, runs):
        moment = start + timedelta(minutes=i)
        name = moment.strftime("%Y%m%dT%H%M%S.%fZ") + "_SPY_harvested.json"
        (history / name).write_text(
            template.replace(stamp_field, json.dumps(moment.isoformat().replace("+00:00", "Z")), 1)
        )
    return history, archive, config


def naive_latest(history: Path, underlying: str, limit: int = 10) -> list[dict]:
    """What a panel without an index would do: open every file, keep this underlying's newest."""
    runs = []
    for path in history.glob("*.json"):
        data = json.loads(path.read_text())
        if data.get("underlying") == underlying:
            runs.append(data)
    runs.sort(key=lambda r: r["timestamp"])
    return runs[-limit:]


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="history size (default 100000)")
    parser.add_argument("--requests", type=int, default=25, help="warm requests to time (default 25, at least 20)")
    parser.add_argument("--naive-repeats", type=int, default=3, help="repeats of the naive scan (default 3)")
    args = parser.parse_args(argv)

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from calibration_policy import open_store
    from calibration_policy.target import JsonFileTarget
    from calibration_policy_ui import create_router

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        began = time.perf_counter()
        history, archive, config = build_history(root, args.runs)
        print(f"Built {args.runs:,} run files in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        time.sleep(0.3)  # let the folder's mtime age, as on a live system, so the index can be trusted

        app = FastAPI()
        app.include_router(
            create_router(history_dir=history, archive_dir=archive, target_for=lambda u: JsonFileTarget(config)),
            prefix="/calibration",
        )
        client = TestClient(app)
        first = timed(lambda: client.get("/calibration/?underlying=SPY").raise_for_status(), 1)[0]
        for _ in range(3):
            client.get("/calibration/?underlying=SPY").raise_for_status()
        panel = timed(lambda: client.get("/calibration/?underlying=SPY").raise_for_status(), args.requests)
        api = timed(
            lambda: client.get("/calibration/api/runs?underlying=SPY&limit=10").raise_for_status(), args.requests
        )
        store = open_store(history)
        indexed = timed(lambda: store.latest("SPY", limit=10), args.requests)
        naive = timed(lambda: naive_latest(history, "SPY"), args.naive_repeats)
        assert [r["timestamp"] for r in naive_latest(history, "SPY")] == [
            r.timestamp.isoformat().replace("+00:00", "Z") for r in store.latest("SPY", limit=10)
        ]

    rows = [
        ("panel page GET /calibration/ (warm)", panel),
        ("JSON GET /api/runs?limit=10 (warm)", api),
        ("latest 10 runs: store with name index", indexed),
        ("latest 10 runs: naive glob + parse all", naive),
    ]
    print(f"\nCalibration panel with {args.runs:,} runs in history (first, cold request: {first:.0f} ms)\n")
    print(f"{'what':<42} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'n':>4}")
    print("-" * 78)
    for name, times in rows:
        print(f"{name:<42} {statistics.median(times):>10.1f} {min(times):>9.1f} {max(times):>9.1f} {len(times):>4}")
    verdict = "met" if statistics.median(panel) <= GOAL_MS else "MISSED"
    print(
        f"\nGoal: panel median ≤ {GOAL_MS:.0f} ms: {verdict}. "
        f"Naive latest-10 is {statistics.median(naive) / statistics.median(indexed):,.0f}× slower than the index."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
