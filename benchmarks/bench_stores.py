"""Issue 16: the PostgreSQL store beside the file store, in the same run, on the same runs.

    python benchmarks/bench_stores.py --runs 100000      # the table in docs/operations/performance.md (1M: --runs 1000000)

Starts a private PostgreSQL server (tests/pg_server.py) with fsync and synchronous_commit ON, the
same durability as the file store's fsync'd writes. Both stores hold the same ``--runs`` runs of 10
underlyings (made as bench_million makes them). Measured, median of ``--repeat``:

* latest 50 of an underlying (warm), through ``open_store().latest``;
* record one run, through ``open_store().record``;
* a full update step (record → smooth → decide → apply), through ``run_update``, on IWM's full
  history (each update stamped right after its newest run, so the smoothing window is full);
* 20 updaters in separate processes, 5 updates each: throughput, and a check that no decision
  was lost or doubled (every run decided once; every applied run archived once; each archived
  change starts from the one before).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_million
import pg_server

UPDATER = """
import json, os, sys
from datetime import datetime, timedelta, timezone
sys.path.insert(0, sys.argv[1])
import bench_history
from calibration_policy import Context, UpdateOptions
from calibration_policy import CalibrationUpdatePolicy, run_update
from calibration_policy.target import JsonFileTarget
first, count, live = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0, min_delta_global=0.001, min_delta_band=0.001)
target = JsonFileTarget(live, name="race_live")
t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
for i in range(first, first + count):
    run_update(bench_history.host_result(1.0 + 0.01 * (i % 40)), underlying='RACE', source='live', target=target, options=UpdateOptions(timestamp=t0 + timedelta(hours=i)), context=Context.build(policy=policy))
"""


def forget_earlier_runs(folder: Path, workdir: Path) -> None:
    """What an earlier benchmark run added (its updates, its race, their archives) goes, so every run
    starts from the same ``--runs`` runs and the race's check sees this run's updates only."""
    import shutil

    for entry in os.scandir(folder):
        # the race's runs, the records (stamped 2031) and the update steps (source "harvested"); never the
        # generated runs (IWM's included: the update step is measured on its full history)
        if "_RACE_" in entry.name or entry.name.endswith("_harvested.json") or entry.name.startswith("2031"):
            os.unlink(entry.path)
    for name in ("files_data", "pg_data"):
        shutil.rmtree(workdir / name, ignore_errors=True)


def fill_postgres(url: str, folder: Path) -> None:
    """The folder's runs, copied into the database with COPY (the fast way in; not what is measured)."""
    import psycopg

    from calibration_policy.naming import parse_run_file_name

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY calibration_runs (run_id, underlying, stamp, seq, at, source, body) FROM STDIN") as copy:
            for entry in os.scandir(folder):
                parts = parse_run_file_name(entry.name)
                if parts is None:
                    continue
                body = Path(entry.path).read_bytes()
                try:
                    data = json.loads(body)
                    when = data["timestamp"]
                except (ValueError, KeyError, TypeError):
                    continue  # the bad files bench_million mixes in
                copy.write_row((entry.name[:-5], parts[1], parts[0], parts[3], when, parts[2], body.decode()))
        conn.execute("ANALYZE calibration_runs")


def measure(store: str, env: dict[str, str], repeat: int, workdir: Path) -> dict[str, float]:
    """One store's figures, measured in a fresh process configured by ``env``."""
    code = f"""
import json, os, statistics, sys, time
from datetime import datetime, timedelta, timezone
sys.path.insert(0, {str(HERE)!r})
import bench_history
from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, open_store, run_update
from calibration_policy.history import build_run
from calibration_policy.target import JsonFileTarget
def median_ms(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return round(statistics.median(out) * 1000, 3)
store = open_store()
store.latest("SPY", 50)
latest = median_ms(lambda: store.latest("SPY", 50), {repeat})
moments = iter(datetime(2031, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i) for i in range(10**6))
result = bench_history.host_result(1.05)
record = median_ms(lambda: store.record(build_run(result, "QQQ", "live", next(moments), None, "vol_surface")), {repeat})
live = {str(workdir)!r} + "/live_{store}.json"
open(live, "w").write(json.dumps({{"global": 1.0, "weekly": 1.0, "monthly": 1.0}}))
target = JsonFileTarget(live, name="bench_{store}")
policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0)
values = iter(range(10**6))
# the update step on IWM's full history: each update stamped 90 s after the last run, as the generated runs are
newest = store.latest("IWM", 1)
after = newest[-1].timestamp if newest else datetime(2031, 6, 1, tzinfo=timezone.utc)
updates = iter(after + timedelta(seconds=90 * (i + 1)) for i in range(10**6))
update = median_ms(lambda: run_update(bench_history.host_result(1.0 + 0.05 * (next(values) % 7)), underlying="IWM",
                                      source="harvested", target=target, context=Context.build(policy=policy),
                                      options=UpdateOptions(timestamp=next(updates))), {repeat})
print(json.dumps({{"latest_50_ms": latest, "record_ms": record, "update_step_ms": update}}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def race(env: dict[str, str], workdir: Path, name: str, processes: int = 20, each: int = 5) -> dict[str, float]:
    """``processes`` updaters at once; throughput and the consistency check."""
    live = workdir / f"race_{name}.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    script = workdir / "updater.py"
    script.write_text(UPDATER)
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(HERE), str(i * each), str(each), str(live)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for child in children:
        if child.wait() != 0:
            raise SystemExit(child.stderr.read())
    seconds = time.perf_counter() - started
    check = """
import json, sys
from calibration_policy import active_store, open_store
from calibration_policy.stores import open_archive
runs = open_store().latest("RACE", 100000)
changes = open_archive(None, "race_live").entries()
ok = (all(r.decided_at is not None for r in runs) and {r.run_id for r in runs if r.applied} == {c.run_id for c in changes}
      and len(changes) == len({c.run_id for c in changes})
      and all(b.previous_values == a.new_values for a, b in zip(changes, changes[1:])))
print(json.dumps({"runs": len(runs), "changes": len(changes), "consistent": ok}))
"""
    verdict = json.loads(
        subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    return {"updates_per_s": round(processes * each / seconds, 1), **verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cp-stores")
    parser.add_argument("--out", type=Path, default=HERE / "results_stores.json")
    parser.add_argument("--updaters", type=int, default=20, help="Updater processes racing at once (20).")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = args.workdir / f"runs_{args.runs}"
    print(f"Making {args.runs:,} runs in {folder} (kept for the next run)…", file=sys.stderr)
    bench_million.make_folder(folder, args.runs)
    forget_earlier_runs(folder, args.workdir)
    results = {"runs": args.runs, "updaters": args.updaters, "stores": {}}
    with pg_server.Server(fsync=True) as server:
        from calibration_policy.default_plugins.postgresql.schema import upgrade

        url = server.new_database()
        upgrade(url)
        print("Copying them into PostgreSQL…", file=sys.stderr)
        fill_postgres(url, folder)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CALIBRATION_")}
        files_data = args.workdir / "files_data"
        files_env = {**base, "CALIBRATION_DATA": str(files_data), "CALIBRATION_HISTORY_DIR": str(folder)}
        pg_env = {**base, "CALIBRATION_DATA": str(args.workdir / "pg_data"), "CALIBRATION_STORE": url}
        for name, env in (("files", files_env), ("postgresql", pg_env)):
            print(f"Measuring the {name} store…", file=sys.stderr)
            results["stores"][name] = {
                **measure(name, env, args.repeat, args.workdir),
                **race(env, args.workdir, name, args.updaters),
            }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    rows = [f"At {results['runs']:,} runs | file store | PostgreSQL store | goal (PostgreSQL)", "---|---|---|---"]
    goals = {
        "latest_50_ms": "≤ 2 ms",
        "record_ms": "≤ 5 ms",
        "update_step_ms": "≤ 20 ms",
        "updates_per_s": "reported",
        "consistent": "no lost or doubled decision",
    }
    names = {
        "latest_50_ms": "latest 50 (ms)",
        "record_ms": "record one run (ms)",
        "update_step_ms": "full update step (ms)",
        "updates_per_s": f"{results.get('updaters', 20)} concurrent updaters (updates/s)",
        "consistent": f"{results.get('updaters', 20)} updaters: consistent",
    }
    files, pg = results["stores"]["files"], results["stores"]["postgresql"]
    for key, label in names.items():
        rows.append(f"{label} | {files[key]} | {pg[key]} | {goals[key]}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
