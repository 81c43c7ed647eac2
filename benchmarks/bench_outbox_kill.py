"""No event lost or invented while updaters and the deliverer are SIGKILLed at random (issue 28's reliability figure).

    python benchmarks/bench_outbox_kill.py            # 1,000 decisions (several minutes on 2 cores)
    python benchmarks/bench_outbox_kill.py --quick    # a smoke run: 60 decisions (tests/benchmarks)

One data root on the file store (``$CALIBRATION_DATA`` in a temp folder), one live config, and a policy whose
``[[notify]]`` endpoint is a local receiver in this process (keep-alive, answers 204, verifies each signature
with the stock ``standardwebhooks.Webhook(secret).verify`` and records every ``webhook-id`` it is sent).

* **Updaters** (2 processes, this file's ``updater`` role): each loops over ``run_update`` with a random
  result, half under rules that apply a move of 0.001 or more (as the smoothed value settles, most of these
  are not applied either), 3 in 10 under rules that need approval (a waiting suggestion), 2 in 10 under
  rules that refuse it (too few options). Before each call it appends, with fsync, the run id it is
  about to record; after it, the outcome (run, route, change, suggestion). Each is SIGKILLed at a random
  moment (``--kill-every``, default 0.5-2.5 s after its imports) and started again.
* **The deliverer**: ``calibration-policy outbox run --loop`` (a pass every 0.1 s), SIGKILLed at a random
  moment after its first pass (``--deliverer-kill-every``) and started again.

Once ``--decisions`` decisions have returned, the updaters are told to stop, the deliverer is killed a last
time, the killed changes are settled (``settle_interrupted``, what the next change or ``doctor --repair``
does) and clean delivery passes run until the outbox has nothing left to deliver. Then, from the public
API (the archive, the suggestions, the runs, the outbox) and the receiver's log:

* every change that went live (each archive entry) has exactly one event in the outbox, delivered;
* every suggestion made (waiting, or superseded since) has exactly one ``waiting`` event, delivered;
* every run the rules refused has exactly one ``not_applied`` event (a run a killed update left undecided,
  which settling marks not applied, was decided by nobody and is not announced);
* no event is invented: each names a change in the archive, a suggestion that exists, or a run decided
  not applied; every change and suggestion an updater was told about is in the store;
* duplicates (a deliverer killed after the receiver answered, before it stored the attempt) carry the same
  ``webhook-id``: counted as repeats, never as new events.

Writes ``benchmarks/results_outbox_kill.json`` (the full run; ``--quick`` writes only to an explicit
``--out``), prints a summary, exits 1 when an event was lost or invented.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_outbox import SECRET, result  # the same host result and secret as the cost benchmark
from calibration_policy import Context, UpdateOptions

SECRET_ENV = "BENCH_HOOK_SECRET"
TARGET = "spy_live"
UPDATERS = 2
MODES = {"apply": 5, "approval": 3, "refuse": 2}  # weights: half apply, 3 in 10 wait, 2 in 10 are not applied
RULES = {"min_sample_size": 1, "min_vega_sum": 0, "min_delta_global": 0.001, "min_delta_band": 0.001}


def append_durably(path: Path | str, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: once this returns, the line survives a SIGKILL."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A log's lines; a torn last line (killed mid-append) is dropped."""
    lines = []
    for raw in path.read_bytes().split(b"\n") if path.exists() else []:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def policy_toml(url: str, **extra: Any) -> str:
    lines = [f"{key} = {json.dumps(value)}" for key, value in {**RULES, **extra}.items()]
    lines += ["[[notify]]", 'name = "desk"', f'url = "{url}"', f'secret_env = "{SECRET_ENV}"']
    return "\n".join(lines) + "\n"


# -- the updater process ------------------------------------------------------------------------------


def updater(spec: dict[str, Any]) -> None:
    """Decide one random result after another until the stop file appears (or a SIGKILL lands)."""
    from calibration_policy import CalibrationUpdatePolicy, run_update
    from calibration_policy.naming import run_file_name, utc_stamp
    from calibration_policy.plugins import get_plugin_manager
    from calibration_policy.target import JsonFileTarget

    get_plugin_manager()  # warm: kills should land in writes, not in imports
    policies = {
        "apply": CalibrationUpdatePolicy.from_toml(spec["policy"]),
        "approval": CalibrationUpdatePolicy.from_toml(spec["approval_policy"]),
        "refuse": CalibrationUpdatePolicy.from_toml(spec["refuse_policy"]),
    }
    target = JsonFileTarget(spec["config"], name=TARGET)
    log, stop, worker = spec["log"], Path(spec["stop"]), spec["worker"]
    rng = random.Random(spec["seed"])
    append_durably(log, {"ready": os.getpid()})
    while not stop.exists():
        mode = rng.choices(list(MODES), list(MODES.values()))[0]
        now = datetime.now(UTC)
        stamp = now.replace(microsecond=now.microsecond // UPDATERS * UPDATERS + worker)  # never a peer's stamp
        run_id = run_file_name(utc_stamp(stamp), "SPY", "live").removesuffix(".json")
        append_durably(log, {"about": run_id, "mode": mode})
        outcome = run_update(
            result(round(rng.uniform(0.9, 1.2), 4)),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=stamp),
            context=Context.build(policy=policies[mode]),
        )
        append_durably(
            log,
            {
                "outcome": outcome.run.run_id,
                "route": outcome.route,
                "change": outcome.change.change_id if outcome.change else None,
                "suggestion": outcome.run.pending_suggestion if outcome.route == "propose" else None,
            },
        )


# -- the receiver -------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """Verifies each message's signature with the stock library and records its id and event."""

    protocol_version = "HTTP/1.1"
    got: list[tuple[str, dict[str, Any]]] = []
    bad: list[str] = []
    delay = 0.0

    def do_POST(self) -> None:
        from standardwebhooks import Webhook

        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(Receiver.delay)  # a message in flight for a while: a kill can land between send and log
        try:
            payload = Webhook(SECRET).verify(body, dict(self.headers))
        except Exception as error:
            Receiver.bad.append(f"{self.headers.get('webhook-id')}: {error}")
            code = 400
        else:
            Receiver.got.append((self.headers["webhook-id"], payload["data"]))
            code = 204
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a deliverer killed mid-request: expected
            super().handle_error(request, client_address)


# -- the campaign -------------------------------------------------------------------------------------


class Campaign:
    def __init__(self, work: Path, url: str, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.rng = random.Random(args.seed)
        self.logs = work / "logs"
        self.logs.mkdir()
        self.config = work / "live.json"
        self.config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
        self.stop = work / "stop"
        for name, extra in (
            ("policy", {}),
            ("approval_policy", {"require_approval": True}),
            ("refuse_policy", {"min_sample_size": 1_000_000}),  # the sample is 412 options: never enough
        ):
            (work / f"{name}.toml").write_text(policy_toml(url, **extra))
        self.env = {**os.environ, "CALIBRATION_DATA": str(work / "data"), SECRET_ENV: SECRET}
        for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
            self.env.pop(name, None)
        self.env.update(PYTHONDONTWRITEBYTECODE="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.generation = 0
        self.kills = {"updaters": 0, "deliverer": 0}
        self.decided = 0  # outcomes in the logs of updaters that are gone
        self.errors: list[str] = []

    def start_updater(self, worker: int) -> dict[str, Any]:
        self.generation += 1
        log = self.logs / f"u{self.generation}.jsonl"
        spec = {
            "worker": worker,
            "seed": self.args.seed * 100_000 + self.generation,
            "log": str(log),
            "stop": str(self.stop),
            "config": str(self.config),
            **{name: str(self.work / f"{name}.toml") for name in ("policy", "approval_policy", "refuse_policy")},
        }
        err = self.logs / f"u{self.generation}.err"
        with open(err, "wb") as stderr:  # the child has its own copy of the file
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "updater", json.dumps(spec)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return {"proc": proc, "log": log, "err": err, "kill_at": None, "n": self.generation}

    def start_deliverer(self) -> dict[str, Any]:
        self.generation += 1
        out = self.logs / f"d{self.generation}.out"
        err = self.logs / f"d{self.generation}.err"
        command = shutil.which("calibration-policy", path=str(Path(sys.executable).parent)) or "calibration-policy"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(
                [command, "outbox", "run", "--loop", "--every", "0.1", "--policy", str(self.work / "policy.toml")],
                env=self.env,
                stdout=stdout,
                stderr=stderr,
            )
        return {"proc": proc, "log": out, "err": err, "kill_at": None, "n": self.generation}

    def outcomes(self, slot: dict[str, Any]) -> int:
        return sum("outcome" in line for line in read_jsonl(slot["log"]))

    def ready(self, slot: dict[str, Any]) -> bool:
        if slot["log"].suffix == ".out":  # the deliverer: its first pass has printed its sentence
            return slot["log"].exists() and slot["log"].stat().st_size > 0
        return any("ready" in line for line in read_jsonl(slot["log"]))

    def check_alive(self, slot: dict[str, Any], what: str) -> bool:
        code = slot["proc"].poll()
        if code is None:
            return True
        text = slot["err"].read_text(errors="replace")
        if code != 0 or what == "deliverer":
            self.errors.append(f"{what} {slot['n']} died on its own (exit {code}):\n{text[-3000:]}")
        return False

    def kill(self, slot: dict[str, Any]) -> None:
        os.kill(slot["proc"].pid, signal.SIGKILL)
        slot["proc"].wait()

    def run(self) -> dict[str, Any]:
        args, rng = self.args, self.rng
        slots: list[dict[str, Any] | None] = [None] * UPDATERS
        deliverer = self.start_deliverer()
        deadline = time.monotonic() + args.time_limit
        next_count = 0.0
        live = 0
        while self.decided + live < args.decisions and not self.errors:
            if time.monotonic() > deadline:
                self.errors.append(f"only {self.decided + live} decisions within {args.time_limit} s")
                break
            for i, slot in enumerate(slots):
                if slot is None:
                    slots[i] = self.start_updater(i)
                    continue
                if not self.check_alive(slot, "updater"):
                    self.decided += self.outcomes(slot)
                    slots[i], next_count = None, 0.0  # its outcomes moved from live to decided: count again
                elif slot["kill_at"] is None:
                    if self.ready(slot):  # mostly mid-loop, now and then right at its first write
                        slot["kill_at"] = time.monotonic() + rng.choice(
                            [rng.uniform(0, 0.05), rng.uniform(*args.kill_every), rng.uniform(*args.kill_every)]
                        )
                elif time.monotonic() >= slot["kill_at"]:
                    self.kill(slot)
                    self.kills["updaters"] += 1
                    self.decided += self.outcomes(slot)
                    slots[i], next_count = None, 0.0
            if not self.check_alive(deliverer, "deliverer"):
                break
            if deliverer["kill_at"] is None:
                if self.ready(deliverer):
                    deliverer["kill_at"] = time.monotonic() + rng.uniform(*args.deliverer_kill_every)
            elif time.monotonic() >= deliverer["kill_at"]:
                self.kill(deliverer)
                self.kills["deliverer"] += 1
                deliverer = self.start_deliverer()
            if time.monotonic() >= next_count:
                live = sum(self.outcomes(s) for s in slots if s is not None)
                next_count = time.monotonic() + 0.05
            time.sleep(0.005)
        self.stop.touch()  # the updaters finish the decision under way and leave
        for slot in slots:
            if slot is None:
                continue
            try:
                slot["proc"].wait(60)
            except subprocess.TimeoutExpired:
                self.kill(slot)
                self.errors.append(f"updater {slot['n']} did not stop within 60 s")
            self.check_alive(slot, "updater")
            self.decided += self.outcomes(slot)
        if deliverer["proc"].poll() is None:
            self.kill(deliverer)  # a last kill wherever it is (mid-pass or asleep)
            self.kills["deliverer"] += 1
        logs = [line for path in sorted(self.logs.glob("u*.jsonl")) for line in read_jsonl(path)]
        return {"logs": logs}


def settle_and_drain(work: Path, url: str) -> dict[str, Any]:
    """What a clean restart does: settle the killed changes, then deliver until nothing is left."""
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.delivery import deliver_pass, is_held
    from calibration_policy.pipeline import settle_interrupted
    from calibration_policy.stores import intents, open_outbox
    from calibration_policy.target import JsonFileTarget

    settled = settle_interrupted(JsonFileTarget(work / "live.json", name=TARGET))
    left = intents().pending_names(None, TARGET)
    endpoints = CalibrationUpdatePolicy.from_toml(work / "policy.toml").notify
    passes = 0
    for passes in range(1, 21):  # noqa: B007
        report = deliver_pass(open_outbox(), endpoints)
        records = list(open_outbox().records())
        if all((r.get("deliveries") or {}).get("desk", {}).get("state") == "sent" and not is_held(r) for r in records):
            break
        if report.sent == 0:
            time.sleep(0.2)
    return {"settled": len(settled), "intents_left": len(left), "drain_passes": passes}


def check(campaign_logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The events in the outbox and at the receiver against what the store says happened."""
    from calibration_policy import load_recent_calibration_history
    from calibration_policy.stores import open_archive, open_outbox, open_reviews

    changes = open_archive(None, TARGET).entries()
    suggestions = open_reviews().all(target=TARGET)
    runs = {run.run_id: run for run in load_recent_calibration_history("SPY", limit=100_000)}
    records = list(open_outbox().records())
    events = [r["event"] for r in records]
    delivered = Counter(event_id for event_id, _ in Receiver.got)
    by_change = Counter(e["change_id"] for e in events if e.get("change_id"))
    waiting = Counter(e["suggestion_id"] for e in events if e.get("status") == "waiting")
    problems: list[str] = []

    lost = []
    for entry in changes:
        mine = [e for e in events if e.get("change_id") == entry.change_id]
        if len(mine) != 1 or not delivered[mine[0]["event_id"]]:
            lost.append(f"change {entry.change_id} ({entry.kind}): {len(mine)} events, delivered: "
                        f"{[delivered[e['event_id']] for e in mine]}")  # fmt: skip
    for item in suggestions:
        mine = [e for e in events if e.get("status") == "waiting" and e.get("suggestion_id") == item.suggestion_id]
        if len(mine) != 1 or not delivered[mine[0]["event_id"]]:
            lost.append(f"suggestion {item.suggestion_id} ({item.status}): {len(mine)} waiting events, "
                        f"delivered: {[delivered[e['event_id']] for e in mine]}")  # fmt: skip
    made = {entry.change_id for entry in changes}
    suggested = {item.suggestion_id for item in suggestions}
    invented = []
    seen_events = {e["event_id"]: e for e in events}
    for event_id, data in Receiver.got:
        if event_id not in seen_events:
            invented.append(f"delivered {event_id} ({data.get('status')}) is not in the outbox")
    for e in events:
        what = f"{e['kind']}/{e['status']} event {e['event_id']}"
        if e.get("change_id") and e["change_id"] not in made:
            invented.append(f"{what} names change {e['change_id']}, which is not in the archive")
        elif e["status"] == "waiting" and e.get("suggestion_id") not in suggested:
            invented.append(f"{what} names suggestion {e.get('suggestion_id')}, which does not exist")
        elif e["status"] == "not_applied":
            run = runs.get(e.get("run_id"))
            if run is None or run.applied or run.decided_at is None:
                invented.append(f"{what}: run {e.get('run_id')} is {'missing' if run is None else 'not refused'}")
        elif e["status"] not in ("applied", "waiting", "not_applied"):
            problems.append(f"{what}: an unexpected status")
    # What the updaters were told must be in the store (else the checks above would miss a loss).
    told_changes = {line["change"] for line in campaign_logs if line.get("change")}
    told_suggestions = {line["suggestion"] for line in campaign_logs if line.get("suggestion")}
    told_runs = {line["outcome"] for line in campaign_logs if "outcome" in line}
    problems += [f"change {c} was reported live but is not in the archive" for c in sorted(told_changes - made)]
    problems += [f"suggestion {s} was reported but does not exist" for s in sorted(told_suggestions - suggested)]
    problems += [f"run {r} was reported recorded but is missing" for r in sorted(told_runs - set(runs))]
    about = {line["about"] for line in campaign_logs if "about" in line}
    undecided = [r for r in about if r in runs and runs[r].decided_at is None]
    problems += [f"run {r} was left undecided after settling" for r in sorted(undecided)]
    stuck = [
        r["event"]["event_id"] for r in records if (r.get("deliveries") or {}).get("desk", {}).get("state") != "sent"
    ]
    problems += [f"event {e} is not delivered after the final passes" for e in stuck]
    problems += [f"bad signature: {b}" for b in Receiver.bad]
    # Runs the rules refused: each announced once (not_applied), unless it was settled after a kill
    # before its decision was stored (then nobody decided it: recovery records "interrupted").
    proposed = {item.run_id for item in suggestions}
    refused = [r for r in runs.values() if r.decided_at is not None and not r.applied and r.run_id not in proposed]
    by_refused = Counter(e["run_id"] for e in events if e["status"] == "not_applied")
    interrupted = sum(bool((r.decision or {}).get("settled")) for r in refused)
    silent = []
    for run in refused:
        if not (run.decision or {}).get("settled") and by_refused[run.run_id] != 1:
            silent.append(run.run_id)
            lost.append(f"refused run {run.run_id}: {by_refused[run.run_id]} not_applied events")
    return {
        "changes_live": len(changes),
        "suggestions": len(suggestions),
        "runs": len(runs),
        "runs_refused": len(refused) - interrupted,
        "runs_interrupted_before_decision": interrupted,
        "events": len(events),
        "events_by_status": dict(Counter(e["status"] for e in events)),
        "events_by_kind": dict(Counter(f"{e['kind']}/{e['status']}" for e in events)),
        "events_written_by_settling": sum("interrupted change was settled" in (e.get("reason") or "") for e in events),
        "deliveries": sum(delivered.values()),
        "delivered": len(delivered),
        "repeats": sum(n - 1 for n in delivered.values()),
        "events_repeated": sum(n > 1 for n in delivered.values()),
        "lost": len(lost),
        "invented": len(invented),
        "refused_runs_without_event": len(silent),
        "changes_with_more_than_one_event": sum(n > 1 for n in by_change.values()),
        "suggestions_with_more_than_one_event": sum(n > 1 for n in waiting.values()),
        "details": {
            "lost": lost[:20],
            "invented": invented[:20],
            "refused_without_event": silent[:20],
            "problems": problems[:20],
        },
        "problems": len(problems),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["updater"]:
        updater(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1000, help="Decisions the updaters make in all.")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(0.5, 2.5), metavar=("MIN", "MAX"),
                        help="An updater is killed this many seconds (uniform) after it is ready.")  # fmt: skip
    parser.add_argument("--deliverer-kill-every", type=float, nargs=2, default=(0.2, 1.5), metavar=("MIN", "MAX"),
                        help="The deliverer is killed this many seconds after its first pass.")  # fmt: skip
    parser.add_argument("--delay", type=float, default=0.01, help="Seconds the receiver takes per message.")
    parser.add_argument("--seed", type=int, default=28)
    parser.add_argument("--time-limit", type=float, default=1800.0, help="Give up after this many seconds.")
    parser.add_argument("--quick", action="store_true", help="A smoke run: 60 decisions.")
    parser.add_argument("--out", type=Path, help="Results file (default: results_outbox_kill.json; --quick: none).")
    parser.add_argument("--keep", action="store_true", help="Keep the data root (printed) for a look afterwards.")
    args = parser.parse_args(argv)
    if args.quick:
        args.decisions = 60
    out = args.out or (None if args.quick else HERE / "results_outbox_kill.json")

    Receiver.got, Receiver.bad, Receiver.delay = [], [], args.delay
    server = QuietServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    work = Path(tempfile.mkdtemp(prefix="bench_outbox_kill_"))
    started = time.perf_counter()
    try:
        campaign = Campaign(work, url, args)
        logs = campaign.run()["logs"]
        campaign_seconds = time.perf_counter() - started
        os.environ["CALIBRATION_DATA"], os.environ[SECRET_ENV] = str(work / "data"), SECRET
        for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
            os.environ.pop(name, None)
        drained = settle_and_drain(work, url)
        found = check(logs)
    finally:
        server.shutdown()
        if args.keep:
            print(f"Data root kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    decisions = sum("outcome" in line for line in logs)
    results = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "store": "files",
        "settings": {
            "decisions_asked": args.decisions,
            "updaters": UPDATERS,
            "modes": MODES,
            "kill_every_seconds": list(args.kill_every),
            "deliverer_kill_every_seconds": list(args.deliverer_kill_every),
            "receiver_delay_seconds": args.delay,
            "seed": args.seed,
            "quick": args.quick,
        },
        "decisions": decisions,
        "decisions_interrupted": sum("about" in line for line in logs) - decisions,
        "kills": campaign.kills,
        **drained,
        **found,
        "errors": campaign.errors,
        "campaign_seconds": round(campaign_seconds, 1),
        "wall_seconds": round(seconds, 1),
    }
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{decisions} decisions by {UPDATERS} updaters on the file store in {results['wall_seconds']} s, "
        f"with {campaign.kills['updaters']} SIGKILLs of an updater ({results['decisions_interrupted']} decisions "
        f"cut short) and {campaign.kills['deliverer']} of the deliverer (calibration-policy outbox run --loop)."
    )
    print(
        f"{found['events']} events ({found['changes_live']} live changes, {found['suggestions']} suggestions, "
        f"{found['events_by_status'].get('not_applied', 0)} refusals; {found['events_written_by_settling']} written "
        f"when a killed change was settled): {found['delivered']} delivered, {found['lost']} lost, "
        f"{found['invented']} invented, {found['repeats']} repeats recognisable by their webhook-id."
    )
    for key in ("lost", "invented", "problems"):
        for line in found["details"][key]:
            print(f"  {key}: {line}")
    for line in campaign.errors:
        print(f"  error: {line}")
    bad = found["lost"] or found["invented"] or found["problems"] or campaign.errors
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
