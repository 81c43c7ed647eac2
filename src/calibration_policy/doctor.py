"""``calibration-policy doctor``: what is left half done or out of place in the data folders, and its repair.

Checks: changes a killed process left unsettled (write-ahead intents), archive entries still
``prepared`` and breaks in the archive chain, the live config against the last archived change,
suggestion statuses against what the archive says went live, runs waiting on a suggestion that
is no longer pending (or gone), foreign files, and drift of the run index. Each finding says in
plain words what is wrong and what ``--repair`` does about it; repairing twice changes nothing more.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .archive import resolve_archive_dir
from .folders import data_folder_report
from .history import MAX_LIMIT, resolve_history_dir
from .index import scan_names
from .policy_events import settle_policy_events
from .stores import active_store, intents, open_archive, open_reviews, open_store
from .target import Target


@dataclass(frozen=True)
class Finding:
    check: str  # intents | archive | config | suggestions | runs | foreign | index | permissions | policy
    what: str  # the problem, in plain words
    repair: str  # what --repair does (or why it cannot)
    repairable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def examine(
    targets: Sequence[Target] = (), *, history_dir=None, archive_dir=None, suggestions_dir=None, repair: bool = False
) -> list[Finding]:
    """Every finding (after repairing what can be, with ``repair``: then only what is left)."""
    from . import pipeline

    if repair:
        for target in targets:
            pipeline.settle_interrupted(
                target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=suggestions_dir
            )
            with pipeline.locked(target):
                open_archive(archive_dir, target.name).reconcile(target, target.load())
        _repair_reviews(targets, history_dir, archive_dir, suggestions_dir)
        _repair_index(history_dir)
        settle_policy_events(None, resolve_archive_dir(archive_dir).parent)  # beside the archive, as events go
    return _findings(targets, history_dir, archive_dir, suggestions_dir)


def _findings(targets, history_dir, archive_dir, suggestions_dir) -> list[Finding]:
    found: list[Finding] = []
    names = {t.name for t in targets} | set(_archived_targets(archive_dir))
    for name in sorted(names):
        pending = intents().pending_names(archive_dir, name)
        busy = (
            set(intents().in_progress(archive_dir, name)) if pending else set()
        )  # one look at the locks, not one per intent
        for intent_name in pending:
            if intent_name.removesuffix(".json") not in busy:
                found.append(
                    Finding(
                        "intents",
                        f"A change of {name} was interrupted ({intent_name}): it may be half done.",
                        "Settles it: completes what reached the live config, records the rest as not applied."
                        if name in {t.name for t in targets}
                        else f"Needs the live config of {name}: give its --config (or --underlying) to repair.",
                        name in {t.name for t in targets},
                    )
                )
        archive = open_archive(archive_dir, name)
        try:
            every = archive.entries(include_all=True)
        except ValueError as error:
            found.append(Finding("archive", str(error), "Nothing: fix the folder by hand.", False))
            continue
        for entry in every:
            if entry.status == "prepared":
                found.append(
                    Finding(
                        "archive",
                        f"Change {entry.change_id} of {name} was never marked committed or abandoned.",
                        "Marks it committed if the live config shows it, else abandoned.",
                    )
                )
        committed = [e for e in every if e.status == "committed"]
        for before, after in zip(committed, committed[1:]):
            if after.previous_snapshot != before.new_snapshot:
                found.append(
                    Finding(
                        "archive",
                        f"The archive chain of {name} breaks at {after.change_id}: what it replaced "
                        f"is not what {before.change_id} made live (the config was edited by hand in between).",
                        "Nothing: the archive is history; the next change starts from the live config.",
                        False,
                    )
                )
        target = next((t for t in targets if t.name == name), None)
        if target is not None and committed:
            try:
                live = target.load()
            except ValueError as error:
                found.append(Finding("config", str(error), "Nothing: restore the config (roll back) first.", False))
            else:
                if live != committed[-1].new_snapshot and not any(e.status == "prepared" for e in every):
                    found.append(
                        Finding(
                            "config",
                            f"The live config of {name} is not what the last archived change "
                            f"({committed[-1].change_id}) made live: it was changed outside calibration-policy.",
                            "Nothing: the next change archives the config as it is.",
                            False,
                        )
                    )
        per_suggestion = Counter(e.suggestion_id for e in committed if e.suggestion_id)
        for sid, count in per_suggestion.items():
            if count > 1:
                found.append(
                    Finding(
                        "suggestions",
                        f"Suggestion {sid} went live {count} times ({name}).",
                        "Nothing: the values are live once more than they should; roll back if needed.",
                        False,
                    )
                )
        found.extend(_review_findings(name, committed, history_dir, suggestions_dir))
    found.extend(_run_findings(history_dir, suggestions_dir))
    if active_store().name == "files":  # folders and their name index: the file store's alone
        found.extend(_foreign_findings(history_dir, archive_dir, suggestions_dir))
        found.extend(_index_findings(history_dir))
    found.extend(_mode_findings(history_dir))
    found.extend(_policy_edit_findings(history_dir))
    return found


def _policy_edit_findings(history_dir) -> list[Finding]:
    """The data root's policy file edited outside calibration-policy (see :mod:`calibration_policy.tamper`)."""
    from .paths import POLICY_FILE_NAME
    from .policy import CalibrationUpdatePolicy
    from .tamper import unrecorded_edit

    root = resolve_history_dir(history_dir).parent
    path = root / POLICY_FILE_NAME
    if not path.is_file():
        return []
    try:
        edit = unrecorded_edit(CalibrationUpdatePolicy.from_toml(path), root)
    except (OSError, ValueError):
        return []
    if edit is None:
        return []
    return [
        Finding(
            "policy",
            edit.sentence(),
            "Nothing: review the file, then `calibration-policy policy accept --actor NAME` "
            "(or put the recorded settings back in it).",
            False,
        )
    ]


def _mode_findings(history_dir) -> list[Finding]:
    """The data root and its folders writable by everyone, or the policy file or users file writable by anyone else
    (a group too): whoever can write them can give themselves any role or change what goes live unseen. A folder
    writable by its group is a common shared setup (umask 002) and is not reported."""
    import os
    import stat

    from .paths import POLICY_ENV, POLICY_FILE_NAME
    from .users import USERS_FILE_NAME

    root = resolve_history_dir(history_dir).parent
    policy = Path(os.environ.get(POLICY_ENV) or root / POLICY_FILE_NAME)
    places = (
        [root, *(p for p in sorted(root.iterdir()) if p.is_dir()), policy, root / USERS_FILE_NAME]
        if root.is_dir()
        else [policy]
    )
    found = []
    for place in places:
        try:
            mode = stat.S_IMODE(place.stat().st_mode)
        except OSError:
            continue
        grants = place in (policy, root / USERS_FILE_NAME)  # the files that say who may do what
        who = (
            "every user of this computer"
            if mode & stat.S_IWOTH
            else "its group"
            if grants and mode & stat.S_IWGRP
            else None
        )
        if who is None:
            continue
        found.append(
            Finding(
                "permissions",
                f"{place} is writable by {who} (mode {mode:04o}), so they could change the policy, the users or "
                "the records without calibration-policy knowing.",
                f"Nothing: run chmod go-w {place} (and give the people who change it their own sign-in).",
                False,
            )
        )
    return found


def _archived_targets(archive_dir) -> list[str]:
    try:
        return active_store().targets(archive_dir)
    except (OSError, ValueError):
        return []


def _suggestions(suggestions_dir, name=None):
    try:
        return open_reviews(suggestions_dir).all(target=name)
    except ValueError:
        return []


def _review_findings(name, committed, history_dir, suggestions_dir) -> list[Finding]:
    found = []
    live_ids = {e.suggestion_id for e in committed if e.suggestion_id}
    for item in _suggestions(suggestions_dir, name):
        went_live = item.suggestion_id in live_ids
        if item.status in ("rejected", "expired") and went_live:
            found.append(
                Finding(
                    "suggestions",
                    f"Suggestion {item.suggestion_id} says {item.status}, but its values went live.",
                    "Records it as approved, as the archive shows.",
                )
            )
        elif item.status == "pending" and went_live:
            found.append(
                Finding(
                    "suggestions",
                    f"Suggestion {item.suggestion_id} still says pending, but its values went live.",
                    "Records it as approved, as the archive shows.",
                )
            )
        elif item.status in ("approved", "modified") and not went_live:
            found.append(
                Finding(
                    "suggestions",
                    f"Suggestion {item.suggestion_id} says {item.status}, but the archive of "
                    f"{name} has no change that made it live.",
                    "Nothing: check the archive by hand.",
                    False,
                )
            )
    return found


def _run_findings(history_dir, suggestions_dir) -> list[Finding]:
    found: list[Finding] = []
    store = open_store(history_dir)
    by_id = {s.suggestion_id: s for s in _suggestions(suggestions_dir)}
    try:
        underlyings = store.underlyings()
    except ValueError:
        return found
    for underlying in underlyings:
        for run in store.latest(underlying, limit=MAX_LIMIT):
            if not run.pending_suggestion:
                continue
            item = by_id.get(run.pending_suggestion)
            if item is None:
                found.append(
                    Finding(
                        "runs",
                        f"Run {run.run_id} waits for suggestion {run.pending_suggestion}, which is gone.",
                        "Records the run as not applied.",
                    )
                )
            elif item.status != "pending":
                found.append(
                    Finding(
                        "runs",
                        f"Run {run.run_id} still waits for suggestion {item.suggestion_id}, which was {item.status}.",
                        "Records the run as applied."
                        if item.status in ("approved", "modified")
                        else f"Records the run as not applied ({item.status}).",
                    )
                )
    return found


def _foreign_findings(history_dir, archive_dir, suggestions_dir) -> list[Finding]:
    found = []
    for _folder, result in data_folder_report(history_dir, archive_dir, suggestions_dir).items():
        if isinstance(result, ValueError):
            found.append(Finding("foreign", str(result), "Nothing: fix the folder by hand.", False))
            continue
        for item in result:
            found.append(
                Finding(
                    "foreign",
                    f"{item.path} {item.reason}.",
                    "Nothing: it is skipped; move it out of the data folder.",
                    False,
                )
            )
    return found


def _index_findings(history_dir) -> list[Finding]:
    directory = resolve_history_dir(history_dir)
    if not directory.is_dir():
        return []
    try:
        files = Counter(parts[1] for parts in scan_names(directory).values())
        store = open_store(history_dir)
        drift = {u: (store.count(u), n) for u, n in files.items() if store.count(u) != n}
    except (OSError, ValueError):
        return []
    return [
        Finding(
            "index",
            f"The run index counts {indexed} runs of {u}, the folder holds {n}.",
            "Rebuilds the index from the run files.",
        )
        for u, (indexed, n) in sorted(drift.items())
    ]


def _repair_reviews(targets, history_dir, archive_dir, suggestions_dir) -> None:
    from . import pipeline

    store = open_reviews(suggestions_dir)
    by_id = {s.suggestion_id: s for s in _suggestions(suggestions_dir)}
    for name in {t.name for t in targets} | set(_archived_targets(archive_dir)):
        try:
            committed = open_archive(archive_dir, name).entries()
        except ValueError:
            continue
        for entry in committed:
            item = by_id.get(entry.suggestion_id or "")
            if item is None or item.status in ("approved", "modified"):
                continue
            with store.holding(item.suggestion_id) as now:
                if now.status not in ("approved", "modified"):
                    store.save(
                        pipeline._reviewed(
                            now, entry, "modified" if entry.kind == "modify" else "approved", entry.actor, now.notes
                        )
                    )
            pipeline._mark_run_applied(item.run_id, entry, history_dir)
    history = open_store(history_dir)
    by_id = {s.suggestion_id: s for s in _suggestions(suggestions_dir)}
    try:
        underlyings = history.underlyings()
    except ValueError:
        return
    for underlying in underlyings:
        for run in history.latest(underlying, limit=MAX_LIMIT):
            item = by_id.get(run.pending_suggestion or "")
            if run.pending_suggestion and (item is None or item.status != "pending"):
                if item is None:
                    reason = f"Not applied: its suggestion {run.pending_suggestion} is gone"
                    history.save(
                        run.model_copy(update={"pending_suggestion": None, "applied": False, "applied_reason": reason})
                    )
                else:
                    pipeline._run_after_review(run, item, history_dir)


def _repair_index(history_dir) -> None:
    if active_store().name != "files" or not _index_findings(history_dir):
        return
    from . import history as history_module

    directory = resolve_history_dir(history_dir)
    for key in [k for k in history_module._stores if Path(k[0]) == directory or k[0] == str(directory)]:
        store = history_module._stores.pop(key, None)
        if store is not None:
            store._index.close()
    shutil.rmtree(directory / ".index", ignore_errors=True)
