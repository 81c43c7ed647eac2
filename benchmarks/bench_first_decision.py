"""Fresh process → first decision: what a cron job pays before it knows whether to apply.

    python benchmarks/bench_first_decision.py              # median of 5 fresh processes each
    python benchmarks/bench_first_decision.py --repeat 9

Each sample is a new Python process that imports the public API, records one run into a history
of 30 daily runs, loads the recent history, smooths it (default policy: EWMA, 14 days, 3 scopes)
and decides. Timed with ``time.perf_counter`` inside the process (imports included) and, around
it, the wall clock of the whole process (interpreter start-up included).

The baseline, measured in the same run on the same history, is the same path with the EWMA done
as it was before issue 12: a ``pandas.Series`` and ``Series.ewm(times=…, halflife=…)``, plugged
in as a smoother, so it pays for importing pandas (and the pyarrow pandas pulls in) exactly as
the old built-in did.

Writes ``benchmarks/results_first_decision.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_history

HISTORY_DAYS = 30
START = datetime(2025, 1, 2, 21, tzinfo=UTC)

# argv: history folder, run timestamp (ISO), smoothing strategy. Prints one JSON line.
FIRST_DECISION_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from datetime import datetime
from calibration_policy import (CalibrationUpdatePolicy, get_smoothed_multipliers, load_recent_calibration_history,
                                record_calibration_result, should_apply_update)
folder, moment, smoothing = sys.argv[1], datetime.fromisoformat(sys.argv[2]), sys.argv[3]
if smoothing == "ewma_pandas":
    from calibration_policy import Smoother, get_plugin_manager, hookimpl
    from calibration_policy.default_plugins.smoothers import EwmaOptions

    class PandasEwma:
        # The pre-issue-12 built-in: a tz-aware pandas Series, then Series.ewm over its times.
        @hookimpl
        def register_smoothers(self, register):
            def ewma_pandas(times, values, options):
                import pandas as pd
                series = pd.Series(values, index=pd.DatetimeIndex(times, tz="UTC"), dtype="float64")
                halflife = pd.Timedelta(days=options.half_life_days)
                return float(series.ewm(halflife=halflife, times=series.index).mean().iloc[-1])
            register(Smoother("ewma_pandas", ewma_pandas, options=EwmaOptions))

    get_plugin_manager().register(PandasEwma(), name="bench_pandas_ewma")
result = {"global_metrics": {"n": 412, "vega_sum": 12400.0, "recommended_iv_multiplier": 1.09},
          "bands": {"weekly": {"n": 180, "vega_sum": 3100.0, "recommended_iv_multiplier": 1.11},
                    "monthly": {"n": 232, "vega_sum": 9300.0, "recommended_iv_multiplier": 1.07}}}
run = record_calibration_result(result, "SPY", "live", history_dir=folder, timestamp=moment)
history = load_recent_calibration_history("SPY", limit=50, history_dir=folder)
policy = CalibrationUpdatePolicy(smoothing=smoothing)
smoothed = get_smoothed_multipliers(history, run, policy)
decision = should_apply_update({"global": 1.0, "weekly": 1.0, "monthly": 1.0}, smoothed, policy,
                               {"sample_size": run.sample_size, "vega_sum": run.vega_sum})
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "smoothed": smoothed, "apply": decision.apply,
                  "loaded": sorted(m for m in ("numpy", "pandas", "pyarrow") if m in sys.modules)}))
"""


def make_history(folder: Path, days: int = HISTORY_DAYS) -> datetime:
    """``days`` daily runs of SPY; returns the time of the first run the benchmark records."""
    from calibration_policy import record_calibration_result

    for day in range(days):
        g = round(1.0 + 0.05 * ((day % 9) - 4) / 4, 4)
        record_calibration_result(
            bench_history.host_result(g), "SPY", "live", history_dir=folder, timestamp=START + timedelta(days=day)
        )
    return START + timedelta(days=days)


def sample(folder: Path, smoothing: str, moment: datetime) -> dict:
    """One fresh process: seconds inside it, seconds of the whole process, heavy modules it loaded."""
    args = [sys.executable, "-c", FIRST_DECISION_SNIPPET, str(folder), moment.isoformat(), smoothing]
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    whole = time.perf_counter() - start
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "whole": whole}


def summary(samples: list[dict]) -> dict:
    return {
        "median_ms": bench_history.ms(statistics.median(s["seconds"] for s in samples)),
        "process_median_ms": bench_history.ms(statistics.median(s["whole"] for s in samples)),
        "samples_ms": [bench_history.ms(s["seconds"]) for s in samples],
        "modules_loaded": samples[-1]["loaded"],
    }


def bench_first_decision(workdir: Path, repeat: int = 5) -> dict:
    """Ours (numpy EWMA) and the pandas EWMA baseline, alternating so a load drift hits both alike."""
    folder = workdir / "first_decision_runs"
    moment = make_history(folder)
    ours, pandas = [], []
    for i in range(repeat):  # every process records a run of its own, an hour after the previous one
        ours.append(sample(folder, "ewma", moment + timedelta(hours=2 * i)))
        pandas.append(sample(folder, "ewma_pandas", moment + timedelta(hours=2 * i + 1)))
    return {"history_runs": HISTORY_DAYS, "repeat": repeat, "ours": summary(ours), "pandas_ewma": summary(pandas)}


def table(report: dict) -> str:
    ours, base = report["ours"], report["pandas_ewma"]
    rows = [
        (
            "fresh process → first decision (in process)",
            f"{ours['median_ms']:.0f} ms",
            f"{base['median_ms']:.0f} ms",
            f"{base['median_ms'] / ours['median_ms']:.1f}×",
        ),
        (
            "same, whole process incl. interpreter start",
            f"{ours['process_median_ms']:.0f} ms",
            f"{base['process_median_ms']:.0f} ms",
            f"{base['process_median_ms'] / ours['process_median_ms']:.1f}×",
        ),
        (
            "heavy modules loaded",
            ", ".join(ours["modules_loaded"]) or "–",
            ", ".join(base["modules_loaded"]) or "–",
            "",
        ),
    ]
    headers = ("measurement", "numpy EWMA (ours)", "pandas EWMA (before)", "ratio")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per variant (median taken)")
    parser.add_argument("--out", default=str(HERE / "results_first_decision.json"))
    args = parser.parse_args(argv)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }
    workdir = Path(tempfile.mkdtemp(prefix="cp-bench-first-"))
    try:
        report = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine,
            **bench_first_decision(workdir, args.repeat),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine["load_average_at_end"] = list(os.getloadavg())
    report["table"] = table(report)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}")
    print(report["table"])
    print(
        f"\nload average at start {machine['load_average_at_start']}, at end {machine['load_average_at_end']}; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
