"""Concurrency: many processes change one target, record runs, and review one suggestion at once.

* Applies: P worker processes each make K changes to ONE live config, cycling through
  ``apply_values``, ``run_update(force=True)`` and ``force_apply``. Worker k sets its own key
  ``w<k>`` to 1, 2, …, K with each change. Afterwards: committed archive entries == changes the
  workers reported; the archive is one contiguous chain (each entry's previous values/snapshot
  are the prior entry's new ones; times strictly rise; periods meet end to start); the live
  config is the last entry's new snapshot; every ``w<k>`` is K (a lost update — a stale
  read-modify-write — would leave some worker's key behind); every run a worker recorded is in
  the history, marked applied with the values its change applied.
* Records: 16 processes × 20 runs into one history (50 in the long run); half of the workers use the
  very same timestamps → 320 valid files, none overwritten (each (worker, i) marker found exactly once).
* Review: N processes approve or reject the same suggestion at the same moment → exactly one
  wins; every other one gets "already approved/rejected …"; the config changed iff the winner
  approved.

Default: 8 × 20 applies, 16 × 20 records, 3 rounds × 10 reviewers.
``CALIBRATION_POLICY_LONG_TESTS=1``: 20 × 50 applies, 50 × 20 records, 10 rounds × 16 reviewers.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

from proofkit import LONG, build_result, run_drivers, start_driver

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    HistoryStore,
    load_recent_calibration_history,
)
from calibration_policy.archive import Archive
from calibration_policy.pipeline import run_update
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

APPLY_WORKERS, APPLY_COUNT = (20, 50) if LONG else (8, 20)
RECORD_WORKERS, RECORD_COUNT = (50, 20) if LONG else (16, 20)  # 16 writers already collide on every stamp
REVIEW_ROUNDS, REVIEWERS = (10, 16) if LONG else (3, 10)


def test_concurrent_applies_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "config").mkdir(parents=True)
    config = root / "config" / "live.json"
    config.write_text(json.dumps({"global": 1.0}) + "\n")
    reports = run_drivers(
        "apply-worker",
        [{"root": str(root), "worker": k, "count": APPLY_COUNT, "config": str(config)} for k in range(APPLY_WORKERS)],
        timeout=1200,
    )
    reported = [c for r in reports for c in r["changes"]]
    assert len(reported) == len(set(reported)) == APPLY_WORKERS * APPLY_COUNT

    target = JsonFileTarget(config)
    live = target.load()
    archive = Archive(root / "archive", target.name)
    everything = archive.entries(include_all=True)
    committed = archive.entries()
    assert len(everything) == len(committed) == len(reported), "an apply left a prepared or abandoned entry"
    assert {e.change_id for e in committed} == set(reported)
    previous_values, previous_snapshot = {"global": 1.0}, {"global": 1.0}
    for entry in committed:
        assert entry.previous_values == previous_values, f"archive not contiguous at {entry.change_id}"
        assert entry.previous_snapshot == previous_snapshot
        previous_values, previous_snapshot = entry.new_values, entry.new_snapshot
    assert previous_snapshot == live
    times = [e.at for e in committed]
    assert times == sorted(times) and len(set(times)) == len(times)
    periods = archive.periods()
    assert len(periods) == len(committed) + 1
    for before, after in itertools.pairwise(periods):
        assert before.until == after.since
    for k in range(APPLY_WORKERS):
        assert live[f"w{k}"] == float(APPLY_COUNT), f"worker {k}'s last change was lost"

    by_change = {e.change_id: e for e in committed}
    for report in reports:
        store = HistoryStore(root / "history")
        assert store.count(f"U{report['worker']}") == len(report["runs"])
        for run_id in report["runs"]:
            run = store.get(run_id)
            assert run.applied is True and run.forced is True
            assert run.applied_values is not None
            matching = [e for e in committed if e.run_id == run_id]
            assert len(matching) == 1 and matching[0].new_values == run.applied_values
            assert by_change[matching[0].change_id].underlying == run.underlying
    print(
        f"\n[concurrency] {APPLY_WORKERS}x{APPLY_COUNT}: {len(committed)} changes committed, "
        f"{len(reported)} reported, 0 lost",
        file=sys.stderr,
    )


def test_concurrent_records_keep_every_run(tmp_path: Path) -> None:
    history = tmp_path / "history"
    reports = run_drivers(
        "record-worker",
        [
            {"history": str(history), "worker": k, "count": RECORD_COUNT, "same_timestamp": k % 2 == 0}
            for k in range(RECORD_WORKERS)
        ],
        timeout=600,
    )
    ids = [run_id for r in reports for run_id in r["run_ids"]]
    total = RECORD_WORKERS * RECORD_COUNT
    assert len(ids) == len(set(ids)) == total
    files = sorted(history.glob("*.json"))
    assert len(files) == total
    markers = Counter()
    for path in files:
        data = json.loads(path.read_bytes())
        markers[(data["snapshot_sensors"]["worker"], data["snapshot_sensors"]["i"])] += 1
    assert set(markers.values()) == {1} and len(markers) == total, "a run was overwritten or duplicated"
    # Same-stamp collisions really happened, and each got its own name.
    assert sum(1 for i in ids if i.rsplit("_", 1)[-1].isdigit()) >= (RECORD_WORKERS // 2 - 1) * RECORD_COUNT
    loaded = load_recent_calibration_history("SPY", limit=total, history_dir=history)
    assert len(loaded) == total
    stamps = [(r.timestamp, r.run_id) for r in loaded]
    assert [r.timestamp for r in loaded] == sorted(r.timestamp for r in loaded), "history not oldest first"
    assert len(set(stamps)) == total
    print(f"\n[concurrency] {RECORD_WORKERS}x{RECORD_COUNT}: {len(files)} run files, 0 overwritten", file=sys.stderr)


def _review_round(root: Path, config: Path, round_no: int) -> dict:
    target = JsonFileTarget(config)
    policy = CalibrationUpdatePolicy(
        min_delta_global=0.0, min_delta_band=0.0, min_sample_size=10, min_vega_sum=10.0, require_approval=True
    )  # every update becomes a suggestion
    outcome = run_update(
        build_result(global_m=1.1 + round_no / 100),
        underlying="SPY",
        source="live",
        target=target,
        context=Context.build(
            policy=policy,
            history_dir=root / "history",
            archive_dir=root / "archive",
            suggestions_dir=root / "suggestions",
        ),
    )
    suggestion_id = outcome.run.pending_suggestion
    assert suggestion_id and outcome.change is None
    before = config.read_bytes()
    go = root / f"go-{round_no}"
    procs = []
    for n in range(REVIEWERS):
        ready = root / f"ready-{round_no}-{n}"
        procs.append(
            (
                ready,
                start_driver(
                    "review-worker",
                    {
                        "root": str(root),
                        "config": str(config),
                        "suggestion_id": suggestion_id,
                        "go": str(go),
                        "ready": str(ready),
                        "action": "approve" if n % 2 == 0 else "reject",
                        "reviewer": f"reviewer-{n}",
                    },
                ),
            )
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in procs):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()
    results = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    winners = [r for r in results if r["ok"]]
    assert len(winners) == 1, f"{len(winners)} reviewers won: {winners}"
    winner = winners[0]
    verb = "approved" if winner["action"] == "approve" else "rejected"
    for loser in (r for r in results if not r["ok"]):
        assert f"already {verb}" in loser["error"] and winner["reviewer"] in loser["error"], loser["error"]
        assert "\n" not in loser["error"]
    item = ReviewStore(root / "suggestions").get(suggestion_id)
    assert item.status == verb and item.reviewer == winner["reviewer"]
    entries = [e for e in Archive(root / "archive", target.name).entries() if e.suggestion_id == suggestion_id]
    if verb == "approved":
        assert len(entries) == 1 and target.values(target.load()) == entries[0].new_values
    else:
        assert entries == [] and config.read_bytes() == before, "a rejected suggestion changed the config"
    return {"winner": winner["action"], "losers": len(results) - 1}


def test_concurrent_review_exactly_one_wins(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "config").mkdir(parents=True)
    config = root / "config" / "live.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}) + "\n")
    rounds = [_review_round(root, config, n) for n in range(REVIEW_ROUNDS)]
    print(f"\n[concurrency] review: {rounds}", file=sys.stderr)
