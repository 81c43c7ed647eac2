"""Small programs the proof tests run in separate processes: ``python drivers.py <command> <json spec>``.

* ``crash-writer``  records runs and applies changes in an endless loop until it is SIGKILLed.
  It appends to its log, with fsync, every value set it is *about to* write to the live config
  (``intent``) and every run / change a call *returned* (``recorded`` / ``applied``).
* ``apply-worker``  makes ``count`` changes to one shared target and reports what it did.
* ``record-worker`` records ``count`` runs (optionally all with the same timestamps as its peers).
* ``review-worker`` waits for a start signal, then approves or rejects one suggestion.

Each non-endless command prints one JSON report as its last stdout line.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from proofkit import HOST_PLUGINS, T0, append_durably, build_result

from calibration_policy import Context, UpdateOptions


def make_target(kind: str, path: Path):
    if kind == "json":
        from calibration_policy.target import JsonFileTarget

        return JsonFileTarget(path)
    if kind == "vol_surface":
        from calibration_policy.plugins import get_target_factory, load_plugins_dir

        load_plugins_dir(HOST_PLUGINS)
        return get_target_factory("vol_surface")("SPY", str(path))  # the host's VolSurfaceTarget
    raise SystemExit(f"unknown target kind {kind}")


class LoggingTarget:
    """Wraps a real target; logs (durably) each snapshot just before it is saved."""

    def __init__(self, inner, log: str) -> None:
        self.inner, self.log = inner, log
        self.name, self.lock_path = inner.name, inner.lock_path

    def load(self):
        return self.inner.load()

    def values(self, snapshot):
        return self.inner.values(snapshot)

    def with_values(self, snapshot, values: Mapping[str, float]):
        return self.inner.with_values(snapshot, values)

    def save(self, snapshot) -> None:
        append_durably(self.log, {"intent": snapshot})
        self.inner.save(snapshot)


def crash_writer(spec: dict[str, Any]) -> None:
    from calibration_policy import (
        CalibrationUpdatePolicy,
        HistoryError,
        record_calibration_result,
    )
    from calibration_policy.apply import apply_values
    from calibration_policy.archive import Archive
    from calibration_policy.pipeline import force_apply, run_update
    from calibration_policy.pipeline import roll_back as rollback

    root = Path(spec["root"])
    history, archive = root / "history", root / "archive"
    log = spec["log"]
    rng = random.Random(spec["seed"])
    target = LoggingTarget(make_target(spec["target_kind"], Path(spec["config"])), log)
    policy = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01, min_sample_size=10, min_vega_sum=10.0)
    import pandas  # noqa: F401  (warm up: kills should land in writes, not in imports)

    from calibration_policy.plugins import get_plugin_manager

    get_plugin_manager()
    append_durably(log, {"ready": os.getpid()})
    # A few fixed timestamps shared by every writer, so same-stamp names collide on purpose.
    stamps = [T0 + timedelta(seconds=s) for s in range(5)]
    while True:
        op = rng.choice(["record", "record", "update", "update", "force", "apply", "apply", "rollback"])
        g = round(rng.uniform(0.8, 1.3), 4)
        result = build_result(global_m=g)
        if op == "record":
            stamp = rng.choice(stamps + [None])
            run = record_calibration_result(result, "SPY", "live", history_dir=history, timestamp=stamp)
            append_durably(log, {"recorded": run.run_id})
        elif op == "update":
            outcome = run_update(
                result,
                underlying="SPY",
                source="live",
                target=target,
                options=UpdateOptions(force=rng.random() < 0.5),
                context=Context.build(policy=policy, history_dir=history, archive_dir=archive),
            )
            append_durably(log, {"recorded": outcome.run.run_id})
            if outcome.change is not None:
                append_durably(log, {"applied": outcome.change.change_id})
        elif op == "force":
            try:
                outcome = force_apply(
                    "SPY",
                    target=target,
                    use=rng.choice(["smoothed", "recommended"]),
                    context=Context.build(policy=policy, history_dir=history, archive_dir=archive),
                )
            except HistoryError:
                continue  # nothing recorded yet
            append_durably(log, {"applied": outcome.change.change_id})
        elif op == "apply":
            values = {"global": g, "weekly": round(g * 1.01, 4), "monthly": round(g * 0.99, 4)}
            entry = apply_values(target, values, archive_dir=archive, kind="force", reason="Applied: crash test")
            append_durably(log, {"applied": entry.change_id})
        else:
            periods = Archive(archive, target.name).periods()
            if not periods:
                continue
            period = rng.choice(periods)
            entry = rollback(
                target,
                period.change.change_id if period.change else "original",
                context=Context.build(archive_dir=archive),
            )
            append_durably(log, {"applied": entry.change_id})


def apply_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Every change sets this worker's own key ``w<k>`` to 1, 2, …, count (plus a shared ``global``)."""
    from calibration_policy import CalibrationUpdatePolicy, record_calibration_result
    from calibration_policy.apply import apply_values
    from calibration_policy.pipeline import force_apply, run_update

    root, k = Path(spec["root"]), spec["worker"]
    history, archive = root / "history", root / "archive"
    target = make_target("json", Path(spec["config"]))
    policy = CalibrationUpdatePolicy(min_sample_size=10, min_vega_sum=10.0)
    key = f"w{k}"
    changes, runs = [], []
    underlying = f"U{k}"  # own underlying, so force_apply's "latest run" is this worker's
    for i in range(1, spec["count"] + 1):
        g = round(1.0 + (k * 7 + i) % 50 / 100, 4)
        mode = spec.get("mode") or ("apply", "update", "force")[i % 3]
        if mode == "apply":
            entry = apply_values(
                target,
                {"global": g, key: float(i)},
                archive_dir=archive,
                kind="force",
                reason=f"Applied: worker {k} step {i}",
                underlying=underlying,
            )
        elif mode == "update":
            outcome = run_update(
                build_result(global_m=g, bands={key: float(i)}),
                underlying=underlying,
                source="live",
                target=target,
                options=UpdateOptions(force=True, force_values="recommended", timestamp=T0 + timedelta(seconds=i)),
                context=Context.build(policy=policy, history_dir=history, archive_dir=archive),
            )
            entry = outcome.change
            runs.append(outcome.run.run_id)
        else:
            run = record_calibration_result(
                build_result(global_m=g, bands={key: float(i)}),
                underlying,
                "live",
                history_dir=history,
                timestamp=T0 + timedelta(seconds=i),
            )
            runs.append(run.run_id)
            outcome = force_apply(
                underlying,
                target=target,
                run_id=run.run_id,
                use="recommended",
                context=Context.build(policy=policy, history_dir=history, archive_dir=archive),
            )
            entry = outcome.change
        assert entry is not None and entry.status == "committed", entry
        changes.append(entry.change_id)
    return {"worker": k, "changes": changes, "runs": runs}


def record_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from calibration_policy import record_calibration_result

    k, count = spec["worker"], spec["count"]
    run_ids = []
    for i in range(count):
        # Same-stamp workers all use T0 + i s: every one of their runs collides with its peers'.
        stamp = T0 + timedelta(seconds=i) if spec["same_timestamp"] else T0 + timedelta(minutes=k, seconds=i)
        run = record_calibration_result(
            build_result(global_m=1.0 + i / 1000, sensors={"worker": k, "i": i}),
            "SPY",
            "live",
            history_dir=spec["history"],
            timestamp=stamp,
        )
        run_ids.append(run.run_id)
    return {"worker": k, "run_ids": run_ids}


def review_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from calibration_policy.pipeline import approve_suggestion, reject_suggestion
    from calibration_policy.review import ReviewStore

    root = Path(spec["root"])
    target = make_target("json", Path(spec["config"]))
    store = ReviewStore(root / "suggestions")
    go = Path(spec["go"])
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.001)
    try:
        if spec["action"] == "approve":
            approve_suggestion(
                spec["suggestion_id"],
                target=target,
                context=Context.build(
                    suggestions_dir=store,
                    actor=spec["reviewer"],
                    archive_dir=root / "archive",
                    history_dir=root / "history",
                ),
            )
        else:
            reject_suggestion(
                spec["suggestion_id"], context=Context.build(suggestions_dir=store, actor=spec["reviewer"])
            )
        return {"ok": True, "action": spec["action"], "reviewer": spec["reviewer"]}
    except ValueError as error:
        return {"ok": False, "action": spec["action"], "reviewer": spec["reviewer"], "error": str(error)}


def race_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """``propose``: ``count`` updates that need approval; ``approve``: approve (or reject) the newest
    pending suggestion again and again until the proposers are done (``stop`` file)."""
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.pipeline import approve_suggestion, reject_suggestion, run_update
    from calibration_policy.review import ReviewStore

    root, k = Path(spec["root"]), spec["worker"]
    history, archive, suggestions = root / "history", root / "archive", root / "suggestions"
    target = make_target("json", Path(spec["config"]))
    policy = CalibrationUpdatePolicy(
        min_delta_global=0.001, min_delta_band=0.001, min_sample_size=10, min_vega_sum=10.0, require_approval=True
    )
    rng = random.Random(k)
    done: dict[str, int] = {"proposed": 0, "approved": 0, "rejected": 0, "lost": 0}
    if spec["role"] == "propose":
        for i in range(spec["count"]):
            g = round(0.8 + rng.random() * 0.5, 4)
            run_update(
                build_result(global_m=g),
                underlying="SPY",
                source="live",
                target=target,
                options=UpdateOptions(timestamp=T0 + timedelta(seconds=k * 100000 + i)),
                context=Context.build(
                    policy=policy, history_dir=history, archive_dir=archive, suggestions_dir=suggestions
                ),
            )
            done["proposed"] += 1
        return {"worker": k, **done}
    store = ReviewStore(suggestions)
    stop = Path(spec["stop"])
    while not stop.exists():
        pending = store.all(target=target.name, status="pending") if suggestions.exists() else []
        if not pending:
            time.sleep(0.002)
            continue
        item = pending[-1]
        try:
            if rng.random() < 0.8:
                approve_suggestion(
                    item.suggestion_id,
                    target=target,
                    context=Context.build(
                        suggestions_dir=store, actor=f"r{k}", archive_dir=archive, history_dir=history
                    ),
                )
                done["approved"] += 1
            else:
                reject_suggestion(
                    item.suggestion_id,
                    target=target,
                    context=Context.build(
                        suggestions_dir=store, actor=f"r{k}", archive_dir=archive, history_dir=history
                    ),
                )
                done["rejected"] += 1
        except ValueError:
            done["lost"] += 1  # another reviewer or a newer proposal got there first
    return {"worker": k, **done}


def recovery_writer(spec: dict[str, Any]) -> None:
    """Endless random changes of one shared world until SIGKILLed: updates (a third need approval),
    forced updates, force-applies, approvals, modifications, rejections, roll backs. Each call
    settles what an earlier killed writer left half done before it changes anything."""
    from calibration_policy import CalibrationUpdatePolicy, HistoryError
    from calibration_policy.archive import Archive
    from calibration_policy.pipeline import (
        approve_suggestion,
        force_apply,
        modify_suggestion,
        reject_suggestion,
        roll_back,
        run_update,
    )
    from calibration_policy.review import ReviewStore

    root = Path(spec["root"])
    history, archive, suggestions = root / "history", root / "archive", root / "suggestions"
    rng = random.Random(spec["seed"])
    target = make_target("json", Path(spec["config"]))
    policy = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01, min_sample_size=10, min_vega_sum=10.0)
    approval = policy.model_copy(update={"require_approval": True})
    store = ReviewStore(suggestions)
    dirs = {"history_dir": history, "archive_dir": archive}
    append_durably(spec["log"], {"ready": os.getpid(), "token": spec.get("token")})
    while True:
        op = rng.choice(["update", "propose", "propose", "force", "approve", "approve", "modify", "reject", "rollback"])
        g = round(rng.uniform(0.8, 1.3), 4)
        try:
            if op in ("update", "propose"):
                run_update(
                    build_result(global_m=g),
                    underlying="SPY",
                    source="live",
                    target=target,
                    options=UpdateOptions(force=op == "update" and rng.random() < 0.3),
                    context=Context.build(
                        policy=approval if op == "propose" else policy, suggestions_dir=suggestions, **dirs
                    ),
                )
            elif op == "force":
                force_apply(
                    "SPY",
                    target=target,
                    use=rng.choice(["smoothed", "recommended"]),
                    context=Context.build(policy=policy, **dirs),
                )
            elif op in ("approve", "modify", "reject"):
                pending = store.all(target=target.name, status="pending") if suggestions.exists() else []
                if not pending:
                    continue
                sid = rng.choice(pending).suggestion_id
                if op == "approve":
                    approve_suggestion(
                        sid, target=target, context=Context.build(suggestions_dir=store, actor="ana", **dirs)
                    )
                elif op == "modify":
                    modify_suggestion(
                        sid,
                        {"global": g, "weekly": g, "monthly": g},
                        target=target,
                        context=Context.build(suggestions_dir=store, actor="bob", **dirs),
                    )
                else:
                    reject_suggestion(
                        sid, target=target, context=Context.build(suggestions_dir=store, actor="cy", **dirs)
                    )
            else:
                periods = Archive(archive, target.name).periods()
                if periods:
                    period = rng.choice(periods)
                    roll_back(
                        target, period.change.change_id if period.change else "original", context=Context.build(**dirs)
                    )
        except (HistoryError, ValueError) as error:
            if "already" in str(error) or "no calibration run" in str(error) or "being reviewed" in str(error):
                continue  # another writer got there first
            raise


def recovery_forker(spec: dict[str, Any]) -> None:
    """Imports once, then forks one ``recovery_writer`` child after another: when the test SIGKILLs
    the child, the next one starts in milliseconds (a fresh interpreter would take seconds)."""
    import traceback

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = "1"  # no helper threads: a fork while one holds a lock could hang the child
    import pandas  # noqa: F401

    import calibration_policy.pipeline  # noqa: F401
    from calibration_policy.plugins import get_plugin_manager

    get_plugin_manager()
    stop = Path(spec["stop"])
    n = 0
    while not stop.exists():
        pid = os.fork()
        if pid == 0:
            try:
                recovery_writer({**spec, "seed": spec["seed"] * 1_000_000 + n, "token": f"{spec['seed']}-{n}"})
            except BaseException:
                append_durably(spec["log"], {"error": traceback.format_exc()[-3000:]})
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        n += 1


def main() -> None:
    command, spec = sys.argv[1], json.loads(sys.argv[2])
    if command == "crash-writer":
        crash_writer(spec)
        return
    if command == "recovery-writer":
        recovery_writer(spec)
        return
    if command == "recovery-forker":
        recovery_forker(spec)
        return
    report = {
        "apply-worker": apply_worker,
        "record-worker": record_worker,
        "review-worker": review_worker,
        "race-worker": race_worker,
    }[command](spec)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
