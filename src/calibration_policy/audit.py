"""The audit trail: every change with when, what, who, from where (via) and why.

Read-only: built from the archive (each change of a live config) and the suggestions (proposed,
approvals that still wait for more approvers, rejected). Nothing here writes, and no route or
command edits it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from . import watch
from .stores import active_store, open_archive, open_reviews

KIND_TEXT = {
    "update": "applied by the policy",
    "force": "force-applied",
    "approve": "approved",
    "modify": "modified",
    "rollback": "rolled back",
    "auto": "applied by auto mode",
}


@dataclass(frozen=True)
class Change:
    at: datetime
    what: str
    who: str
    via: str
    why: str
    target: str
    underlying: str | None = None
    change_id: str | None = None
    suggestion_id: str | None = None
    run_at: datetime | None = None  # the calibration run the change applied, when it is more than a day older
    watch: str | None = None  # the watch after apply of this change, in words (None: not watched)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat(), "run_at": self.run_at.isoformat() if self.run_at else None}


def changes(
    archive_dir: str | os.PathLike[str] | None = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
    underlying: str | None = None,
    *,
    history_dir: str | os.PathLike[str] | None = None,
    policy: Any = None,
) -> list[Change]:
    """Every recorded change, oldest first (optionally only one underlying's); with the ``policy`` in force, each
    watched change says how its watch after apply stands (the runs are read from ``history_dir``)."""
    found: list[Change] = []
    for name in active_store().targets(archive_dir):
        watched = watch.verdicts(archive_dir, history_dir, name, policy) if policy is not None else {}
        for entry in open_archive(archive_dir, name).entries():
            approvers = [str(a.get("by")) for a in (entry.model_extra or {}).get("approvals") or [] if a.get("by")]
            # a replay, a backfill or a late approval: say which day's run it applied, beside when it was made
            run_at = entry.live_from if entry.made_apart else None
            found.append(
                Change(
                    entry.at,
                    f"{name}: {KIND_TEXT.get(entry.kind, entry.kind)}"
                    + (f" (run of {run_at:%Y-%m-%d})" if run_at else ""),
                    " and ".join(approvers) or entry.by or entry.actor,
                    entry.via or "–",
                    entry.reason,
                    name,
                    entry.underlying,
                    entry.change_id,
                    entry.suggestion_id,
                    run_at,
                    watched[entry.change_id].words if entry.change_id in watched else None,
                )
            )
    try:
        suggestions = open_reviews(suggestions_dir).all()
    except (OSError, ValueError):
        suggestions = []
    for item in suggestions:
        sid = item.suggestion_id
        what = f"{item.target}: suggestion {sid}"
        found.append(
            Change(
                item.created_at,
                f"{what} proposed" + (" (force-apply)" if item.forced else ""),
                item.proposed_by or "policy",
                item.proposed_via or "–",
                item.reason,
                item.target,
                item.underlying,
                None,
                sid,
            )
        )
        if item.status == "pending":
            for approval in item.approvals:
                try:
                    at = datetime.fromisoformat(str(approval.get("at")))
                except ValueError:
                    continue
                found.append(
                    Change(
                        at,
                        f"{what} approval recorded (waits for more)",
                        str(approval.get("by")),
                        str(approval.get("via") or "–"),
                        approval.get("notes") or "approved",
                        item.target,
                        item.underlying,
                        None,
                        sid,
                    )
                )
            if item.modified_by:
                found.append(
                    Change(
                        item.modified_at or item.created_at,
                        f"{what} modified (waits for approval)",
                        item.modified_by,
                        item.reviewed_via or "–",
                        item.notes or "modified",
                        item.target,
                        item.underlying,
                        None,
                        sid,
                    )
                )
        elif item.status == "expired":
            why = item.expired_reason or "before anyone reviewed it"
            found.append(
                Change(
                    item.reviewed_at or item.created_at,
                    f"{what} " + ("superseded" if why.startswith("superseded") else "expired"),
                    "–",
                    "–",
                    why[:1].upper() + why[1:] if why.startswith("superseded") else f"Expired: {why}",
                    item.target,
                    item.underlying,
                    None,
                    sid,
                )
            )
        elif item.status == "rejected":
            found.append(
                Change(
                    item.reviewed_at or item.created_at,
                    f"{what} rejected",
                    item.reviewer or "–",
                    item.reviewed_via or "–",
                    item.notes or "rejected",
                    item.target,
                    item.underlying,
                    None,
                    sid,
                )
            )
    if underlying:
        found = [c for c in found if c.underlying in (None, underlying.upper()) or c.underlying == underlying]
    return sorted(found, key=lambda c: c.at)
