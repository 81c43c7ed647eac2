"""The outbox's cost and the delivery worker's speed (issue 28).

    python benchmarks/bench_outbox.py            # 60 interleaved update pairs, 1,000 events delivered
    python benchmarks/bench_outbox.py --quick    # a smoke run (tests/benchmarks)

1. **Writing the outbox** (goal: ≤ 10 % of an update step). The same update (record a run, smooth,
   decide, apply, archive) on the file store, alternately with the outbox (what ships) and without it
   (``events.record`` keeping the event in memory only, as before issue 28), each pair in a fresh data
   root of its own; medians compared.
2. **Delivery** (goal: 1,000 events in ≤ 5 s): 1,000 outbox records delivered by one ``deliver_pass``
   to a local HTTP receiver (keep-alive, answers 204), signed, each attempt stored in the record's
   delivery log before the next.

Writes ``benchmarks/results_outbox.json`` and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from calibration_policy import Context, UpdateOptions

HERE = Path(__file__).resolve().parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = datetime(2025, 12, 10, 21, tzinfo=UTC)


def result(g: float) -> dict:
    band = {"min_dte": 3, "max_dte": 10, "n": 206, "vega_sum": 6200.0, "mae_vol_points": 1.8}
    return {
        "dropped_count": 37,
        "global_metrics": {"n": 412, "vega_sum": 12400.0, "mae_vol_points": 1.84, "recommended_iv_multiplier": g},
        "bands": {
            "weekly": {**band, "recommended_iv_multiplier": g + 0.01},
            "monthly": {**band, "min_dte": 20, "max_dte": 40, "recommended_iv_multiplier": g - 0.01},
        },
        "buckets": [],
    }


def in_memory_record(ctx, event, decided=None):
    """``events.record`` before issue 28: the event kept for the plugins only."""
    ctx.outbox.append((event, decided))


def update_pairs(pairs: int, updates: int) -> dict:
    from calibration_policy import CalibrationUpdatePolicy, events, run_update
    from calibration_policy.target import JsonFileTarget

    policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0, min_delta_global=0.001, min_delta_band=0.001)
    shipped = events.record
    times: dict[str, list[float]] = {"with_outbox": [], "without_outbox": []}
    work = Path(tempfile.mkdtemp(prefix="bench_outbox_"))
    try:
        for pair in range(pairs):
            order = ["with_outbox", "without_outbox"] if pair % 2 == 0 else ["without_outbox", "with_outbox"]
            for arm in order:
                root = work / f"{arm}_{pair}"
                (root / "config").mkdir(parents=True)
                live = root / "config" / "live.json"
                live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
                target = JsonFileTarget(live, name="spy_live")
                events.record = shipped if arm == "with_outbox" else in_memory_record
                folders = {
                    "history_dir": root / "calibration_runs",
                    "archive_dir": root / "config_archive",
                    "suggestions_dir": root / "suggestions",
                }
                run_update(result(1.0), underlying='SPY', source='live', target=target, options=UpdateOptions(timestamp=T0), context=Context.build(policy=policy, **folders))  # fmt: skip  # warm: the folders exist, as in a desk's data root
                for i in range(1, updates + 1):
                    started = time.perf_counter()
                    outcome = run_update(result(round(1.0 + 0.01 * i, 4)), underlying='SPY', source='live', target=target, options=UpdateOptions(timestamp=T0 + timedelta(days=i)), context=Context.build(policy=policy, **folders))  # fmt: skip
                    times[arm].append(time.perf_counter() - started)
                    assert outcome.applied
                outbox = root / "outbox"
                written = len(list(outbox.glob("*.json"))) if outbox.is_dir() else 0
                assert written == (updates + 1 if arm == "with_outbox" else 0), (arm, written)
    finally:
        events.record = shipped
        shutil.rmtree(work, ignore_errors=True)
    with_ms = statistics.median(times["with_outbox"]) * 1000
    without_ms = statistics.median(times["without_outbox"]) * 1000
    return {
        "updates_per_arm": len(times["with_outbox"]),
        "median_ms_with_outbox": round(with_ms, 3),
        "median_ms_without_outbox": round(without_ms, 3),
        "overhead_pct": round(100 * (with_ms / without_ms - 1), 1),
        "goal_pct": 10,
    }


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ids: set[str] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.ids.add(self.headers["webhook-id"])
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def delivery(count: int) -> dict:
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.delivery import deliver_pass
    from calibration_policy.events import Event
    from calibration_policy.outbox import FileOutbox, new_record

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    os.environ["BENCH_HOOK_SECRET"] = SECRET
    rules = CalibrationUpdatePolicy(notify=[{"name": "desk", "url": url, "secret_env": "BENCH_HOOK_SECRET"}])
    work = Path(tempfile.mkdtemp(prefix="bench_outbox_delivery_"))
    try:
        outbox = FileOutbox(work)
        for i in range(count):
            event = Event(
                kind="update", status="applied", domain="vol_surface", target="spy_live", actor="policy",
                via="cron", reason="Applied: the smoothed global moved 0.012", underlying="SPY",
                before={"global": 1.0}, after={"global": 1.0 + i / 1e4}, run_id=f"run_{i}", change_id=f"change_{i}",
            )  # fmt: skip
            outbox.add(new_record(event.to_dict(), None, None))
        started = time.perf_counter()
        report = deliver_pass(outbox, rules.notify)
        seconds = time.perf_counter() - started
        assert report.sent == count and len(Receiver.ids) == count, (report, len(Receiver.ids))
        assert all(r["deliveries"]["desk"]["state"] == "sent" for r in outbox.records())
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return {"events": count, "seconds": round(seconds, 3), "per_second": round(count / seconds), "goal_seconds": 5.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="Fresh data roots per arm (interleaved).")
    parser.add_argument("--updates", type=int, default=10, help="Timed updates per data root.")
    parser.add_argument("--events", type=int, default=1000, help="Events delivered in one pass.")
    parser.add_argument("--quick", action="store_true", help="A smoke run: 2 pairs of 3 updates, 100 events.")
    parser.add_argument("--out", type=Path, default=HERE / "results_outbox.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.updates, args.events = 2, 3, 100
    results = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "update_step": update_pairs(args.pairs, args.updates),
        "delivery": delivery(args.events),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    step, sent = results["update_step"], results["delivery"]
    print(
        f"Update step: {step['median_ms_with_outbox']} ms with the outbox, {step['median_ms_without_outbox']} ms "
        f"without ({step['overhead_pct']:+.1f} %, goal ≤ +10 %; median of {step['updates_per_arm']} each)."
    )
    print(f"Delivery: {sent['events']} events in {sent['seconds']} s ({sent['per_second']}/s, goal ≤ 5 s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
