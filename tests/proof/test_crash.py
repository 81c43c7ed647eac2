"""Crash safety: writers are SIGKILLed at random moments, then the data must still be whole.

Three writer processes share one history, one archive and one live config. Each loops over
recording runs, ``run_update`` (half of them forced), ``force_apply``, ``apply_values`` and
rollbacks, and logs with fsync — *before* writing — every value set it is about to make live,
and — *after* a call returned — every run id and change id the call reported. A killer SIGKILLs
a random writer after a random delay and starts a new one, again and again. Then:

* every run file parses and validates; no run a writer was told was recorded is missing;
* the live config is a whole, valid config equal to the original or to a value set some writer
  was about to apply;
* after ``Archive.reconcile`` no change is left ``prepared``; the committed changes form one
  chain (each one's previous snapshot is the one before's new snapshot), times strictly rise,
  every change a writer was told was applied is committed, and the last one is the live config;
* orphan ``.tmp-*`` files are ignored by loads and swept by ``HistoryStore.sweep(0)``;
* one more apply works and keeps all of the above true.

Default: 2 × 12 kills (< 60 s). ``CALIBRATION_POLICY_LONG_TESTS=1``: 2 × 110 kills.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proofkit import (
    HOST_PLUGINS,
    LONG,
    ORIGINAL_JSON_CONFIG,
    ORIGINAL_VOL_SURFACE,
    read_jsonl,
    start_driver,
)

from calibration_policy import (
    CalibrationRun,
    HistoryStore,
    load_recent_calibration_history,
)
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive
from calibration_policy.durable import sweep_orphans
from calibration_policy.naming import parse_run_file_name
from calibration_policy.plugins import get_target_factory, load_plugins_dir
from calibration_policy.target import JsonFileTarget

KILLS = 110 if LONG else 12
WRITERS = 3
SUMMARY: dict[str, dict] = {}


def _target(kind: str, path: Path):
    if kind == "json":
        return JsonFileTarget(path)
    load_plugins_dir(HOST_PLUGINS)
    return get_target_factory("vol_surface")("SPY", str(path))


def _campaign(root: Path, kind: str, kills: int, seed: int) -> dict:
    """Run writers and SIGKILL them ``kills`` times; return what they logged."""
    rng = random.Random(seed)
    (root / "config").mkdir(parents=True)
    (root / "logs").mkdir()
    config = root / "config" / ("vol_surface.json" if kind == "vol_surface" else "live.json")
    original = ORIGINAL_VOL_SURFACE if kind == "vol_surface" else ORIGINAL_JSON_CONFIG
    config.write_text(json.dumps(original, indent=2, sort_keys=True) + "\n")
    slots: list[dict | None] = [None] * WRITERS
    generation = done = 0
    deadline = time.monotonic() + (1500 if LONG else 120)
    try:
        while done < kills:
            assert time.monotonic() < deadline, f"only {done} kills before the time limit"
            for i, slot in enumerate(slots):
                if slot is None:
                    generation += 1
                    log = root / "logs" / f"w{generation}.log"
                    with open(root / "logs" / f"w{generation}.err", "wb") as err:
                        proc = start_driver(
                            "crash-writer",
                            {
                                "root": str(root),
                                "target_kind": kind,
                                "config": str(config),
                                "log": str(log),
                                "seed": seed * 10_000 + generation,
                            },
                            stdout=subprocess.DEVNULL,
                            stderr=err,
                        )
                    slots[i] = {"proc": proc, "log": log, "kill_at": None, "n": generation}
                    continue
                proc = slot["proc"]
                if proc.poll() is not None:
                    error = (root / "logs" / f"w{slot['n']}.err").read_text()
                    pytest.fail(
                        f"a writer died on its own (exit {proc.returncode}); the state a killed peer left "
                        f"must never break a later writer:\n{error[-3000:]}"
                    )
                if slot["kill_at"] is None:
                    if any("ready" in line for line in read_jsonl(slot["log"])):
                        # Mostly mid-loop, sometimes right at the first write.
                        slot["kill_at"] = time.monotonic() + rng.choice([rng.uniform(0, 0.05), rng.uniform(0.05, 0.6)])
                elif time.monotonic() >= slot["kill_at"]:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    done += 1
                    slots[i] = None
            time.sleep(0.002)
    finally:
        for slot in slots:
            if slot is not None and slot["proc"].poll() is None:
                os.kill(slot["proc"].pid, signal.SIGKILL)
                slot["proc"].wait()
                done += 1
    logs = [line for path in sorted((root / "logs").glob("*.log")) for line in read_jsonl(path)]
    return {"config": config, "original": original, "logs": logs, "kills": done}


def _check_history(root: Path, logs: list[dict]) -> int:
    history = root / "history"
    names = [p.name for p in history.iterdir()] if history.exists() else []
    runs = [n for n in names if parse_run_file_name(n)]
    strays = [n for n in names if not parse_run_file_name(n) and not n.startswith(".tmp-") and n != ".index"]
    assert not strays, f"files that are neither runs nor temp files: {strays}"
    for name in runs:
        data = json.loads((history / name).read_bytes())  # raises on a torn file
        CalibrationRun.model_validate({**data, "run_id": name[:-5]})
    recorded = {line["recorded"] for line in logs if "recorded" in line}
    missing = recorded - {n[:-5] for n in runs}
    assert not missing, f"runs reported as recorded but gone after the crashes: {sorted(missing)[:5]}"
    return len(runs)


def _check_config_and_archive(root: Path, kind: str, campaign: dict) -> dict:
    config, original, logs = campaign["config"], campaign["original"], campaign["logs"]
    live = json.loads(config.read_bytes())  # a torn or half-written config fails here
    intents = [line["intent"] for line in logs if "intent" in line]
    assert live == original or live in intents, "the live config is not a value set any writer applied"
    target = _target(kind, config)
    target.values(target.load())  # and the host's own loader accepts it
    archive = Archive(root / "archive", target.name)
    raw = sorted((root / "archive" / target.name).glob("*.json")) if (root / "archive").exists() else []
    for path in raw:
        json.loads(path.read_bytes())
    archive.reconcile(target, target.load())
    everything = archive.entries(include_all=True)
    assert len(everything) == len(raw), "an archive entry is unreadable"
    assert not [e for e in everything if e.status == "prepared"], "reconcile left a change prepared"
    committed = archive.entries()
    previous = original
    for entry in committed:
        assert entry.previous_snapshot == previous, f"archive chain broken at {entry.change_id}"
        previous = entry.new_snapshot
    assert previous == live, "the last committed change is not the live config"
    times = [e.at for e in committed]
    assert times == sorted(times) and len(set(times)) == len(times), "change times do not strictly rise"
    applied = {line["applied"] for line in logs if "applied" in line}
    committed_ids = {e.change_id for e in committed}
    assert applied <= committed_ids, (
        f"changes reported as applied but not committed: {sorted(applied - committed_ids)[:5]}"
    )
    periods = archive.periods()
    for before, after in itertools.pairwise(periods):
        assert before.until == after.since
    return {
        "committed": len(committed),
        "abandoned": sum(e.status == "abandoned" for e in everything),
        "intents": len(intents),
        "reported_applied": len(applied),
    }


def _check_temp_files(root: Path, kind: str, campaign: dict) -> dict:
    history = root / "history"
    natural = len(list(history.glob(".tmp-*")))
    # Plant orphans like a writer killed mid-write: half a JSON document, and an empty file.
    (history / ".tmp-planted1").write_bytes(b'{"schema_version": 1, "timestamp": "2025-12-10T15:')
    (history / ".tmp-planted2").write_bytes(b"")
    old = time.time() - 3600
    os.utime(history / ".tmp-planted1", (old, old))
    runs = [p for p in history.iterdir() if parse_run_file_name(p.name)]
    loaded = load_recent_calibration_history("SPY", limit=100_000, history_dir=history)
    assert len(loaded) == len(runs), "a load did not return every valid run"
    assert HistoryStore(history).sweep(older_than_seconds=3000) == 1  # only the old one
    HistoryStore(history).sweep(older_than_seconds=0)
    assert not list(history.glob(".tmp-*")), "sweep left temp files behind"
    others = 0
    for folder in (root / "config", root / "archive" / _target(kind, campaign["config"]).name):
        others += len(list(folder.glob(".tmp-*")))
        sweep_orphans(folder, older_than_seconds=0)
        assert not list(folder.glob(".tmp-*"))
    assert len(load_recent_calibration_history("SPY", limit=100_000, history_dir=history)) == len(runs)
    return {"orphans_left_by_kills": natural + others}


@pytest.mark.parametrize("kind", ["json", "vol_surface"])
def test_sigkill_writers_never_corrupt_anything(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "root"
    campaign = _campaign(root, kind, KILLS, seed=7 if kind == "json" else 11)
    assert campaign["kills"] >= KILLS
    runs = _check_history(root, campaign["logs"])
    archive = _check_config_and_archive(root, kind, campaign)
    temps = _check_temp_files(root, kind, campaign)
    # Life goes on: the next change reconciles, applies and keeps the chain whole.
    target = _target(kind, campaign["config"])
    entry = apply_values(
        target, {"global": 1.2345}, archive_dir=root / "archive", kind="force", reason="Applied: after crashes"
    )
    assert target.values(target.load())["global"] == 1.2345
    campaign["logs"].append({"intent": entry.new_snapshot})
    after = _check_config_and_archive(root, kind, campaign)
    assert after["committed"] == archive["committed"] + 1
    SUMMARY[kind] = {"kills": campaign["kills"], "runs": runs, **archive, **temps}
    print(f"\n[crash:{kind}] {SUMMARY[kind]}", file=sys.stderr)
    assert runs > 0 and archive["committed"] > 0, "the writers never got to write anything"
