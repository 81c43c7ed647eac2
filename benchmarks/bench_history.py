"""Benchmark the run store against the naive "glob + json.load everything" approach.

    python benchmarks/bench_history.py            # 1k, 10k and 100k runs (a few minutes)
    python benchmarks/bench_history.py --quick    # 1k and 10k only
    python benchmarks/bench_history.py --sizes 200   # a smoke run in seconds (the test suite's)

For every size N, one history folder holds N runs spread over 4 underlyings. The run files are
made fast: one real run per underlying is recorded with ``record_calibration_result`` and its
bytes are copied under the proper names with the timestamp changed, so every file is a valid,
loadable run whose content matches its name.

Measured (wall clock, ``time.perf_counter``; the OS page cache is warm in every case):

* latest-50 warm     same process, store already open, median of >= 20 loads
* latest-50 cold     a fresh Python process imports the package and loads once (the index is
                     already built); the load alone is timed inside that process
* index rebuild      ``.index`` deleted, first load in a fresh store (full scan + insert)
* load after record  record one run, then load at once (the DESIGN flow: the folder changed,
                     so the index rescans it)
* naive              ``glob("*.json")`` + ``json.load`` every file + filter + sort + newest 50
* record             ``record_calibration_result`` (fsynced temp file + link + fsynced folder)
                     vs plain ``json.dump`` to a file (no fsync, no atomicity)
* import             ``import calibration_policy`` in a fresh process, median of 5
* memory             tracemalloc peak of one latest-50 load at the largest N, vs naive

Writes ``benchmarks/results.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNDERLYINGS = ("SPY", "QQQ", "IWM", "DIA")
LIMIT = 50
GOALS = {
    "latest50_100k_ms": 10.0,
    "speedup_vs_naive": 100.0,
    "record_ms": 2.0,
    "import_ms": 150.0,
}


def host_result(global_m: float = 1.05) -> dict:
    """A calibration result in the host's shape (DESIGN §1)."""
    return {
        "dropped_count": 37,
        "global_metrics": {"n": 412, "vega_sum": 12400.0, "mae_vol_points": 1.84, "vega_weighted_mae_pct": 4.37,
                           "recommended_iv_multiplier": global_m},
        "bands": {
            "weekly": {"min_dte": 3, "max_dte": 10, "n": 180, "vega_sum": 3100.0, "mae_vol_points": 2.1,
                       "recommended_iv_multiplier": round(global_m * 1.02, 4)},
            "monthly": {"min_dte": 20, "max_dte": 40, "n": 232, "vega_sum": 9300.0, "mae_vol_points": 1.5,
                        "recommended_iv_multiplier": round(global_m * 0.98, 4)},
        },
        "buckets": [
            {"dte_bucket": "3-10", "abs_delta_bucket": "0.10-0.25", "n": 90, "mae_vol_points": 2.3},
            {"dte_bucket": "20-40", "abs_delta_bucket": "0.25-0.50", "n": 120, "mae_vol_points": 1.2},
        ],
        "anchor_ratios": {"0.1": 1.12, "0.25": 1.05, "0.5": 1.0},
        "recommended_vol_surface": {"iv_multiplier": global_m, "bands": {"weekly": global_m * 1.02, "monthly": global_m * 0.98}},
        "snapshot_sensors": {"spot": 601.25, "chain_rows": 449},
    }  # fmt: skip


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def median_time(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


# -- building a history folder fast ---------------------------------------------------------------


def make_history(folder: Path, n: int) -> float:
    """Write ``n`` valid run files into ``folder``; return the seconds it took."""
    from calibration_policy import record_calibration_result

    start = time.perf_counter()
    folder.mkdir(parents=True)
    base = datetime(2020, 1, 1, tzinfo=UTC)
    templates = {}
    with tempfile.TemporaryDirectory() as scratch:
        for underlying in UNDERLYINGS:
            run = record_calibration_result(host_result(), underlying, "live", history_dir=scratch, timestamp=base)
            data = (Path(scratch) / f"{run.run_id}.json").read_bytes()
            marker = b'"timestamp": "2020-01-01T00:00:00Z"'
            assert data.count(marker) == 1, "template timestamp not found"
            templates[underlying] = data.split(marker)
    for i in range(n):
        underlying = UNDERLYINGS[i % len(UNDERLYINGS)]
        moment = base + timedelta(minutes=7 * i, microseconds=i % 997)
        iso = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        head, tail = templates[underlying]
        name = f"{moment:%Y%m%dT%H%M%S.%fZ}_{underlying}_live.json"
        with open(folder / name, "wb") as handle:
            handle.write(head + f'"timestamp": "{iso}"'.encode() + tail)
    return time.perf_counter() - start


# -- the approaches -------------------------------------------------------------------------------


def naive_latest(folder: Path, underlying: str, limit: int = LIMIT) -> list[dict]:
    runs = []
    for path in folder.glob("*.json"):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("underlying") == underlying:
            runs.append(data)
    runs.sort(key=lambda r: r["timestamp"])
    return runs[-limit:]


COLD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from calibration_policy import load_recent_calibration_history
t1 = time.perf_counter()
runs = load_recent_calibration_history(sys.argv[2], limit=int(sys.argv[3]), history_dir=sys.argv[1])
t2 = time.perf_counter()
assert len(runs) == int(sys.argv[3]), len(runs)
print(json.dumps({"import": t1 - t0, "load": t2 - t1}))
"""

IMPORT_SNIPPET = """
import time
t0 = time.perf_counter()
import calibration_policy
print(time.perf_counter() - t0)
"""


def run_python(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def bench_size(n: int, workdir: Path, naive_repeat: int, warm_repeat: int) -> dict:
    from calibration_policy import load_recent_calibration_history, record_calibration_result
    from calibration_policy.history import HistoryStore
    from calibration_policy.stores import open_store

    folder = workdir / f"runs_{n}"
    print(f"\n== N = {n:,}: creating files ...", flush=True)
    created = make_history(folder, n)
    print(f"   created {n:,} run files in {created:.1f} s", flush=True)
    time.sleep(0.3)  # let the folder go quiet, as it is between calibration runs

    # Index rebuild: no .index, a fresh store, the first load.
    shutil.rmtree(folder / ".index", ignore_errors=True)
    store = HistoryStore(folder)
    start = time.perf_counter()
    first = store.latest("SPY", LIMIT)
    rebuild = time.perf_counter() - start
    store._index.close()
    assert len(first) == LIMIT
    time.sleep(0.3)

    # Warm: the process-wide store, repeated.
    load = lambda: load_recent_calibration_history("SPY", limit=LIMIT, history_dir=folder)
    load()
    warm, warm_all = median_time(load, warm_repeat)

    # Correctness check against the naive approach, then the naive timing.
    naive_runs = naive_latest(folder, "SPY")
    ours = load()
    assert [r["timestamp"] for r in naive_runs] == [r.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for r in ours]
    naive, naive_all = median_time(lambda: naive_latest(folder, "SPY"), naive_repeat)

    # Cold: a fresh process per sample, index built.
    cold_samples = [json.loads(run_python(COLD_SNIPPET, str(folder), "SPY", str(LIMIT))) for _ in range(5)]
    cold = statistics.median(s["load"] for s in cold_samples)
    cold_import = statistics.median(s["import"] for s in cold_samples)

    # The DESIGN flow: record a run, then load at once (the folder changed → the index rescans).
    after_record = []
    moment = datetime(2035, 1, 1, tzinfo=UTC)
    for i in range(5):
        record_calibration_result(
            host_result(), "SPY", "live", history_dir=folder, timestamp=moment + timedelta(days=i)
        )
        start = time.perf_counter()
        runs = load()
        after_record.append(time.perf_counter() - start)
        assert runs[-1].timestamp == moment + timedelta(days=i)
    open_store(folder)._index.close()

    row = {
        "n": n,
        "create_files_s": round(created, 2),
        "latest50_warm_ms": ms(warm),
        "latest50_warm_min_ms": ms(min(warm_all)),
        "latest50_cold_ms": ms(cold),
        "cold_process_import_ms": ms(cold_import),
        "index_rebuild_ms": ms(rebuild),
        "load_after_record_ms": ms(statistics.median(after_record)),
        "naive_ms": ms(naive),
        "naive_samples": len(naive_all),
        "speedup_warm": round(naive / warm, 1),
        "speedup_cold": round(naive / cold, 1),
        "folder": str(folder),
    }
    print("   " + json.dumps({k: v for k, v in row.items() if k != "folder"}), flush=True)
    return row


def bench_record(workdir: Path, count: int = 200) -> dict:
    from calibration_policy import record_calibration_result

    folder, plain = workdir / "record_bench", workdir / "plain_bench"
    plain.mkdir()
    result = host_result()
    base = datetime(2030, 1, 1, tzinfo=UTC)
    record_calibration_result(result, "SPY", "live", history_dir=folder, timestamp=base - timedelta(days=1))  # warm-up
    ours = []
    for i in range(count):
        start = time.perf_counter()
        record_calibration_result(result, "SPY", "live", history_dir=folder, timestamp=base + timedelta(minutes=i))
        ours.append(time.perf_counter() - start)
    naive = []
    for i in range(count):
        start = time.perf_counter()
        with open(plain / f"run_{i}.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        naive.append(time.perf_counter() - start)
    return {
        "count": count,
        "record_median_ms": ms(statistics.median(ours)),
        "record_p95_ms": ms(sorted(ours)[int(0.95 * count)]),
        "naive_dump_median_ms": ms(statistics.median(naive)),
    }


def bench_import(repeat: int = 5) -> dict:
    samples = [float(run_python(IMPORT_SNIPPET)) for _ in range(repeat)]
    return {"import_median_ms": ms(statistics.median(samples)), "samples_ms": [ms(s) for s in samples]}


def bench_memory(folder: Path) -> dict:
    from calibration_policy.history import HistoryStore

    store = HistoryStore(folder)
    store.latest("SPY", LIMIT)  # open the index, build the validators: measure the load, not setup
    gc.collect()
    tracemalloc.start()
    store.latest("SPY", LIMIT)
    _, ours = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store._index.close()
    gc.collect()
    tracemalloc.start()
    naive_latest(folder, "SPY")
    _, naive = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n": int(folder.name.split("_")[1]),
        "ours_peak_kib": round(ours / 1024, 1),
        "naive_peak_kib": round(naive / 1024, 1),
    }


# -- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "✅" if ok else "❌"


def markdown(report: dict) -> str:
    lines = [
        "| runs | latest-50 warm | latest-50 cold (load only) | index rebuild | load right after a record | naive glob+json | speed-up warm / cold |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["sizes"]:
        lines.append(
            f"| {row['n']:,} | {row['latest50_warm_ms']:.2f} ms | {row['latest50_cold_ms']:.1f} ms | "
            f"{row['index_rebuild_ms']:.0f} ms | {row['load_after_record_ms']:.1f} ms | "
            f"{row['naive_ms']:.0f} ms (median of {row['naive_samples']}) | {row['speedup_warm']:,.0f}× / {row['speedup_cold']:,.0f}× |"
        )
    goals = report["goals"]
    lines += ["", "| goal | target | measured | |", "|---|---:|---:|---|"]
    for name, target, measured, ok in goals:
        lines.append(f"| {name} | {target} | {measured} | {verdict(ok)} |")
    rec, mem = report["record"], report.get("memory")
    lines += [
        "",
        f"record (durable, fsync): median {rec['record_median_ms']:.2f} ms, p95 {rec['record_p95_ms']:.2f} ms over "
        f"{rec['count']} records; naive json.dump without fsync: {rec['naive_dump_median_ms']:.3f} ms.",
        f"import calibration_policy (fresh process, median of 5): {report['import']['import_median_ms']:.0f} ms.",
    ]
    if mem:
        lines.append(
            f"memory peak of one latest-50 load at {mem['n']:,} runs (tracemalloc): ours {mem['ours_peak_kib']:,.0f} KiB, "
            f"naive {mem['naive_peak_kib']:,.0f} KiB."
        )
    for row in report["sizes"]:
        lines.append(f"files for {row['n']:,} runs created in {row['create_files_s']:.1f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k runs only")
    parser.add_argument("--sizes", type=int, nargs="+", help="history sizes to measure (default 1k 10k 100k)")
    parser.add_argument("--workdir", help="where to create the history folders (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args(argv)

    load_at_start = list(os.getloadavg())
    sizes = sorted(args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows = [
            bench_size(n, workdir, naive_repeat=3 if n >= 100_000 else 5, warm_repeat=50 if n <= 10_000 else 30)
            for n in sizes
        ]
        record = bench_record(workdir, count=min(200, sizes[-1]))
        imports = bench_import()
        memory = bench_memory(Path(rows[-1]["folder"]))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    largest = rows[-1]
    goals = [
        (f"latest-50 at {largest['n']:,} (warm)", f"≤ {GOALS['latest50_100k_ms']:g} ms", f"{largest['latest50_warm_ms']:.2f} ms",
         largest["latest50_warm_ms"] <= GOALS["latest50_100k_ms"]),
        (f"latest-50 at {largest['n']:,} (cold process)", f"≤ {GOALS['latest50_100k_ms']:g} ms", f"{largest['latest50_cold_ms']:.1f} ms",
         largest["latest50_cold_ms"] <= GOALS["latest50_100k_ms"]),
        (f"speed-up vs naive at {largest['n']:,} (warm)", f"≥ {GOALS['speedup_vs_naive']:g}×", f"{largest['speedup_warm']:,.0f}×",
         largest["speedup_warm"] >= GOALS["speedup_vs_naive"]),
        (f"speed-up vs naive at {largest['n']:,} (cold)", f"≥ {GOALS['speedup_vs_naive']:g}×", f"{largest['speedup_cold']:,.0f}×",
         largest["speedup_cold"] >= GOALS["speedup_vs_naive"]),
        ("record, durable (median)", f"≤ {GOALS['record_ms']:g} ms", f"{record['record_median_ms']:.2f} ms",
         record["record_median_ms"] <= GOALS["record_ms"]),
        ("import calibration_policy", f"≤ {GOALS['import_ms']:g} ms", f"{imports['import_median_ms']:.0f} ms",
         imports["import_median_ms"] <= GOALS["import_ms"]),
    ]  # fmt: skip
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "sizes": [{k: v for k, v in row.items() if k != "folder"} for row in rows],
        "record": record,
        "import": imports,
        "memory": memory,
        "goals": goals,
        "notes": "OS page cache warm in all cases; 'cold' is a fresh Python process with the index already built.",
    }
    table = markdown(report)
    report["goals"] = [{"goal": g, "target": t, "measured": m, "met": ok} for g, t, m, ok in goals]
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n" + table)
    print(
        f"\nload average (1/5/15 min) at start {load_at_start}, at end {report['machine']['load_average_at_end']} "
        f"on {os.cpu_count()} CPUs"
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
