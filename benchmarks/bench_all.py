"""Every benchmark of calibration-policy in one command, each figure next to its naive counterpart.

    python benchmarks/bench_all.py            # 1k / 10k / 100k runs (a few minutes)
    python benchmarks/bench_all.py --quick    # 1k / 10k runs, fewer repeats (about a minute)
    python benchmarks/bench_all.py --sizes 200 --repeat 2   # a smoke run in seconds (the test suite's)
    python benchmarks/bench_all.py --runs 1000000 --workdir /tmp/cp-million
                                              # issue 12: one table, 1k / 100k / 1M, fair baselines

Rows (all wall clock, ``time.perf_counter``, OS page cache warm):

* latest-50 at 1k / 10k / 100k, warm (same process) and cold (fresh process, index built) —
  vs naive ``glob("*.json")`` + ``json.load`` every file + filter + sort  [bench_history.py]
* record — ``record_calibration_result`` (fsynced, atomic, never overwrites) vs ``json.dump``
* update step — ``run_update`` into a ``JsonFileTarget`` with a year of daily history, median of
  30 — vs a naive step: glob+parse the history, mean of the window, ``json.dump`` the config
* apply with a long archive — ``apply_values`` with 10 vs 1,000 archived changes
* panel GET ``/calibration/`` at the largest size, warm — vs naive latest-10 scan [bench_panel.py]
* import ``calibration_policy`` in a fresh process                              [bench_history.py]
  and the public API names plus one ``CalibrationUpdatePolicy()`` (the package is lazy)
* fresh process → first decision (record, load, smooth, decide), median of 5 — vs the same path
  with the EWMA done in pandas as before issue 12                         [bench_first_decision.py]
* memory peak (tracemalloc) of one latest-50 load at the largest size vs naive  [bench_history.py]

Prints the machine first and one table at the end; writes ``benchmarks/results_all.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_first_decision
import bench_history
from calibration_policy import Context, UpdateOptions

try:  # the panel benchmark is written by the UI engineer; its helpers are reused when present
    import bench_panel
except ImportError:  # pragma: no cover
    bench_panel = None

GOALS = {"latest50_ms": 10.0, "speedup": 100.0, "record_ms": 2.0, "panel_ms": 50.0, "import_ms": 150.0}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def median_ms(fn, repeat: int) -> tuple[float, list[float]]:
    seconds, samples = bench_history.median_time(fn, repeat)
    return ms(seconds), [ms(s) for s in samples]


# -- update step ------------------------------------------------------------------------------------


def _daily_history(folder: Path, days: int) -> datetime:
    from calibration_policy import record_calibration_result

    start = datetime(2024, 1, 2, 21, tzinfo=UTC)
    for day in range(days):
        g = round(1.0 + 0.05 * ((day % 9) - 4) / 4, 4)
        record_calibration_result(
            bench_history.host_result(g), "SPY", "live", history_dir=folder, timestamp=start + timedelta(days=day)
        )
    return start + timedelta(days=days)


def naive_update_step(
    history: Path, config: Path, result: dict, window_days: float = 14.0, threshold: float = 0.03
) -> bool:
    """What a script without the library does: parse every run, average the window, rewrite the config."""
    runs = []
    for path in history.glob("*.json"):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("underlying") == "SPY":
            runs.append(data)
    runs.sort(key=lambda r: r["timestamp"])
    newest = datetime.fromisoformat(runs[-1]["timestamp"])
    window = [
        r["recommended_iv_multiplier"]["global"]
        for r in runs
        if newest - datetime.fromisoformat(r["timestamp"]) <= timedelta(days=window_days)
    ]
    window.append(result["global_metrics"]["recommended_iv_multiplier"])
    smoothed = sum(window) / len(window)
    current = json.loads(config.read_text())
    if abs(smoothed - current["global"]) >= threshold:
        current["global"] = smoothed
        config.write_text(json.dumps(current))
        return True
    return False


def bench_update(workdir: Path, repeat: int, days: int = 365) -> dict:
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.pipeline import run_update
    from calibration_policy.target import JsonFileTarget

    history, archive = workdir / "update_runs", workdir / "update_archive"
    config = workdir / "update_config.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    moment = _daily_history(history, days)
    target, policy = JsonFileTarget(config), CalibrationUpdatePolicy()
    applied = []

    def ours(i: list[int] = [0]) -> None:  # noqa: B006 - a counter across calls
        i[0] += 1
        g = 1.0 + (0.08 if i[0] % 2 else -0.08)
        outcome = run_update(
            bench_history.host_result(g),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=moment + timedelta(hours=i[0])),
            context=Context.build(policy=policy, history_dir=history, archive_dir=archive),
        )
        applied.append(outcome.applied)

    ours()  # warm-up: imports numpy for the smoothing, opens the index
    time.sleep(0.3)
    median, samples = median_ms(ours, repeat)
    plain = workdir / "naive_config.json"
    plain.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    naive, _ = median_ms(
        lambda: naive_update_step(history, plain, bench_history.host_result(1.08)), max(5, repeat // 3)
    )
    return {
        "history_runs": days + repeat + 1,
        "update_median_ms": median,
        "update_p95_ms": sorted(samples)[int(0.95 * len(samples))],
        "applied_share": round(sum(applied) / len(applied), 2),
        "naive_median_ms": naive,
        "repeat": repeat,
    }


def bench_archive_growth(workdir: Path, big: int, repeat: int) -> dict:
    """apply_values reads the whole archive of the target on every change: cost by archive size."""
    from calibration_policy.apply import apply_values
    from calibration_policy.target import JsonFileTarget

    out = {}
    for size in (10, big):
        config = workdir / f"grow_{size}.json"
        config.write_text(json.dumps({"global": 1.0}))
        target, archive = JsonFileTarget(config), workdir / f"grow_archive_{size}"
        for i in range(size):
            apply_values(target, {"global": 1 + i / 10_000}, archive_dir=archive, kind="force", reason="Applied: bench")

        def one(target=target, archive=archive, step=[0]) -> None:  # noqa: B006 - a counter across calls
            step[0] += 1
            apply_values(
                target, {"global": 2 + step[0] / 10_000}, archive_dir=archive, kind="force", reason="Applied: bench"
            )

        out[size] = median_ms(one, repeat)[0]
    return {"small_archive": 10, "big_archive": big, "apply_small_ms": out[10], "apply_big_ms": out[big]}


# -- import -----------------------------------------------------------------------------------------

API_IMPORT_SNIPPET = """
import time
t0 = time.perf_counter()
from calibration_policy import (CalibrationUpdatePolicy, get_smoothed_multipliers, load_recent_calibration_history,
                                record_calibration_result, should_apply_update)
CalibrationUpdatePolicy()
print(time.perf_counter() - t0)
"""


def bench_api_import(repeat: int = 5) -> dict:
    """``import calibration_policy`` is lazy (PEP 562); this is what a host's first call really pays."""
    samples = [float(bench_history.run_python(API_IMPORT_SNIPPET)) for _ in range(repeat)]
    return {"api_import_median_ms": ms(statistics.median(samples)), "samples_ms": [ms(x) for x in samples]}


# -- panel ------------------------------------------------------------------------------------------


def bench_panel_get(folder: Path, repeat: int) -> dict | None:
    if bench_panel is None:
        return None
    try:
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from calibration_policy_ui import create_router
    except ImportError:
        return None
    from calibration_policy.target import JsonFileTarget

    config = folder.parent / "panel_config.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    app = FastAPI()
    app.include_router(
        create_router(
            history_dir=folder, archive_dir=folder.parent / "panel_archive", target_for=lambda u: JsonFileTarget(config)
        ),
        prefix="/calibration",
    )
    client = TestClient(app)
    first = bench_panel.timed(lambda: client.get("/calibration/?underlying=SPY").raise_for_status(), 1)[0]
    for _ in range(3):
        client.get("/calibration/?underlying=SPY").raise_for_status()
    panel = bench_panel.timed(lambda: client.get("/calibration/?underlying=SPY").raise_for_status(), repeat)
    naive = bench_panel.timed(lambda: bench_panel.naive_latest(folder, "SPY"), 3)
    return {
        "panel_first_ms": round(first, 2),
        "panel_median_ms": round(statistics.median(panel), 2),
        "panel_max_ms": round(max(panel), 2),
        "naive_latest10_median_ms": round(statistics.median(naive), 2),
        "requests": repeat,
    }


# -- report -----------------------------------------------------------------------------------------


def _ratio(naive: float, ours: float) -> str:
    return f"{naive / ours:,.0f}×" if ours > 0 else "–"


def table(report: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    ok = lambda met: "yes" if met else "NO"
    for row in report["history"]:
        n = row["n"]
        largest = n == report["history"][-1]["n"]
        goal = f"≤ {GOALS['latest50_ms']:g} ms, ≥ {GOALS['speedup']:g}×" if largest else ""
        met = (
            ok(row["latest50_warm_ms"] <= GOALS["latest50_ms"] and row["speedup_warm"] >= GOALS["speedup"])
            if largest
            else ""
        )
        rows.append(
            (
                f"latest-50 at {n:,} runs, warm",
                f"{row['latest50_warm_ms']:.2f} ms",
                f"{row['naive_ms']:,.0f} ms",
                _ratio(row["naive_ms"], row["latest50_warm_ms"]),
                goal,
                met,
            )
        )
        met = (
            ok(row["latest50_cold_ms"] <= GOALS["latest50_ms"] and row["speedup_cold"] >= GOALS["speedup"])
            if largest
            else ""
        )
        rows.append(
            (
                f"latest-50 at {n:,} runs, cold process",
                f"{row['latest50_cold_ms']:.1f} ms",
                f"{row['naive_ms']:,.0f} ms",
                _ratio(row["naive_ms"], row["latest50_cold_ms"]),
                goal,
                met,
            )
        )
    rec = report["record"]
    rows.append(
        (
            "record one run (fsync, atomic)",
            f"{rec['record_median_ms']:.2f} ms",
            f"{rec['naive_dump_median_ms']:.3f} ms",
            f"{rec['record_median_ms'] / rec['naive_dump_median_ms']:.0f}× slower",
            f"≤ {GOALS['record_ms']:g} ms",
            ok(rec["record_median_ms"] <= GOALS["record_ms"]),
        )
    )
    up = report["update"]
    rows.append(
        (
            f"update step, {up['history_runs']} runs of history",
            f"{up['update_median_ms']:.1f} ms",
            f"{up['naive_median_ms']:.1f} ms",
            _ratio(up["naive_median_ms"], up["update_median_ms"]),
            "",
            "",
        )
    )
    ar = report["archive_growth"]
    rows.append(
        (
            f"apply with {ar['big_archive']:,} archived changes",
            f"{ar['apply_big_ms']:.1f} ms",
            f"{ar['apply_small_ms']:.1f} ms (10 changes)",
            f"{ar['apply_big_ms'] / ar['apply_small_ms']:.0f}× slower",
            "",
            "",
        )
    )
    panel = report.get("panel")
    if panel:
        rows.append(
            (
                f"panel GET /calibration/ at {report['history'][-1]['n']:,} runs",
                f"{panel['panel_median_ms']:.1f} ms",
                f"{panel['naive_latest10_median_ms']:,.0f} ms (latest-10 scan)",
                _ratio(panel["naive_latest10_median_ms"], panel["panel_median_ms"]),
                f"≤ {GOALS['panel_ms']:g} ms",
                ok(panel["panel_median_ms"] <= GOALS["panel_ms"]),
            )
        )
    imp = report["import"]
    rows.append(
        (
            "import calibration_policy (fresh process)",
            f"{imp['import_median_ms']:.0f} ms",
            "–",
            "",
            f"≤ {GOALS['import_ms']:g} ms",
            ok(imp["import_median_ms"] <= GOALS["import_ms"]),
        )
    )
    rows.append(
        (
            "import the public API + build a policy",
            f"{imp['api_import_median_ms']:.0f} ms",
            "–",
            "",
            f"≤ {GOALS['import_ms']:g} ms",
            ok(imp["api_import_median_ms"] <= GOALS["import_ms"]),
        )
    )
    first = report["first_decision"]
    ours, pandas = first["ours"]["median_ms"], first["pandas_ewma"]["median_ms"]
    rows.append(
        (
            "fresh process → first decision",
            f"{ours:.0f} ms",
            f"{pandas:.0f} ms (pandas EWMA)",
            _ratio(pandas, ours),
            "",
            "",
        )
    )
    mem = report["memory"]
    rows.append(
        (
            f"memory peak, one latest-50 load at {mem['n']:,}",
            f"{mem['ours_peak_kib']:,.0f} KiB",
            f"{mem['naive_peak_kib']:,.0f} KiB",
            _ratio(mem["naive_peak_kib"], mem["ours_peak_kib"]),
            "",
            "",
        )
    )
    headers = ("measurement", "calibration-policy", "naive", "ratio", "goal", "met")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]
    if not panel:
        out.append("\n(panel row left out: benchmarks/bench_panel.py or calibration_policy_ui is not available)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k runs, fewer repeats")
    parser.add_argument("--out", default=str(HERE / "results_all.json"))
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument(
        "--runs",
        type=int,
        help="issue 12's table: 1k, 100k and this many runs (e.g. 1000000), "
        "each path beside its fair baseline (SQLite WAL+FULL with the same models, sorted-name scan, "
        "bare durable write, folder listing); see bench_million.py",
    )
    parser.add_argument(
        "--workdir", help="with --runs: where the run folders are made and kept (default: a folder in /tmp)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="history sizes to measure (default 1k 10k 100k; --quick: 1k 10k)"
    )
    parser.add_argument(
        "--repeat", type=int, help="samples per figure (default 30 with --runs, else each measurement's own)"
    )
    args = parser.parse_args(argv)
    if args.runs:
        import bench_million

        sizes = sorted({n for n in (1_000, 100_000, args.runs) if n <= args.runs})
        workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "cp-bench-million")
        workdir.mkdir(parents=True, exist_ok=True)
        out = Path(args.out) if args.out != str(HERE / "results_all.json") else HERE / "results_million.json"
        print(bench_million.run(sizes, workdir, args.repeat or 30, out))
        return 0

    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": list(os.getloadavg()),
    }
    print(
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}, "
        f"load average {machine['load_average_at_start']}",
        flush=True,
    )
    sizes = sorted(args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]))
    # every count below the largest history, and every repeat to --repeat, so a tiny run stays tiny
    cap, repeat = sizes[-1], args.repeat
    workdir = Path(tempfile.mkdtemp(prefix="cp-bench-all-"))
    began = time.perf_counter()
    try:
        history = [
            bench_history.bench_size(
                n,
                workdir,
                naive_repeat=repeat or (3 if n >= 100_000 else 5),
                warm_repeat=repeat or (20 if args.quick else (50 if n <= 10_000 else 30)),
            )
            for n in sizes
        ]
        largest = Path(history[-1]["folder"])
        print("\n== record, update step, archive growth, panel, import, memory", flush=True)
        record = bench_history.bench_record(workdir, count=min(cap, 50 if args.quick else 200))
        update = bench_update(workdir, repeat=repeat or 30, days=min(cap, 365))
        growth = bench_archive_growth(
            workdir, big=min(cap, 300 if args.quick else 1_000), repeat=repeat or (10 if args.quick else 20)
        )
        panel = bench_panel_get(largest, repeat=repeat or (20 if args.quick else 25))
        imports = {**bench_history.bench_import(repeat or 5), **bench_api_import(repeat or 5)}
        first_decision = bench_first_decision.bench_first_decision(workdir, repeat=repeat or 5)
        gc.collect()
        memory = bench_history.bench_memory(largest)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["load_average_at_end"] = list(os.getloadavg())
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - began, 1),
        "machine": machine,
        "goals": GOALS,
        "history": [{k: v for k, v in row.items() if k != "folder"} for row in history],
        "record": record,
        "update": update,
        "archive_growth": growth,
        "panel": panel,
        "import": imports,
        "first_decision": first_decision,
        "memory": memory,
        "notes": (
            "OS page cache warm throughout; 'cold' = a fresh Python process with the run index already built; "
            "the naive figures are measured in the same run on the same files."
        ),
    }
    text = table(report)
    report["table"] = text
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nmachine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}")
    print(text)
    print(
        f"\nload average at start {machine['load_average_at_start']}, at end {machine['load_average_at_end']}; "
        f"{report['seconds']} s in all; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
