"""The events of policy changes, built from the records they leave, so none is lost to a killed process.

A policy version, or a proposal's proposing and review, is one durable record; its event is written
to the outbox right after. A process killed between the two would leave a change nobody hears of,
so every such record says it is announced (``announced``), each event's id derives from the record,
and :func:`settle_policy_events` adds the event of any announced record the outbox lacks — before the
next policy change, at each delivery pass and in ``doctor --repair``. An event is only ever built from
a record that exists, so none is invented; the id makes a second settling a no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .archive import now_utc
from .events import SETTLED_NOTE, Event, derived_event_id
from .policy_versions import PolicyProposal, PolicyProposals, PolicyVersion, PolicyVersions


def version_event(version: PolicyVersion, before: dict[str, Any] | None = None, note: str = "") -> Event:
    """A policy version went live (set, or an earlier one back)."""
    rolled_back = version.kind == "rollback"
    return Event(
        kind="policy_roll_back" if rolled_back else "policy_set",
        status="rolled_back" if rolled_back else "applied",
        domain=version.policy.get("domain"),
        target=None,
        actor=version.actor,
        via=version.via or "python",
        reason=f"Policy version {version.version_id} ({version.fingerprint}) is live, set by {version.actor}: "
        f"{version.reason}{note}",
        before=before if before is not None else version.replaced,
        after=dict(version.policy),
        at=version.at,
        event_id=derived_event_id("policy-version", version.version_id, "live"),
    )


def proposal_event(
    proposal: PolicyProposal, status: str, before: dict[str, Any] | None = None, note: str = "", at: Any = None
) -> Event:
    """A proposal was made (``pending``), approved or rejected."""
    kind, shown = {"pending": ("policy_propose", "waiting"), "approved": ("policy_approve", "applied")}.get(
        status, ("policy_reject", "rejected")
    )
    actor: str | None = proposal.proposer
    if status == "pending":
        when, reason = proposal.at, f"Policy proposed by {proposal.proposer}: {proposal.reason}"
    else:
        actor = proposal.reviewer
        when = at if isinstance(at, datetime) else now_utc()  # a rejection's own time is not recorded
        reason = f"Policy proposal {proposal.proposal_id} by {proposal.proposer} {status} by {proposal.reviewer}" + (
            f": policy version {proposal.version_id} is live" if proposal.version_id else ""
        )
    return Event(
        kind=kind,
        status=shown,
        domain=proposal.policy.get("domain"),
        target=None,
        actor=actor,
        via=proposal.announced.get(status, "python"),
        reason=reason + note,
        before=before,
        after=dict(proposal.policy) if status != "rejected" else None,
        at=when,
        event_id=derived_event_id("policy-proposal", proposal.proposal_id, status),
    )


def settle_policy_events(data_dir: Any = None, outbox_dir: Any = None) -> int:
    """Add the event of every announced policy record whose event the outbox lacks (a process was
    killed between the two). ``data_dir``: where the policy versions are; ``outbox_dir``: the outbox's
    folder on the file store (default: the same). Returns how many were added."""
    from .outbox import add_missing
    from .stores import open_outbox

    versions = PolicyVersions(data_dir).versions()
    went_live = {v.version_id: v.at for v in versions}
    owed: list[Event] = [version_event(v, note=SETTLED_NOTE) for v in versions if v.announced]
    for proposal in PolicyProposals(data_dir).all():
        for status in proposal.announced:
            owed.append(
                proposal_event(proposal, status, note=SETTLED_NOTE, at=went_live.get(proposal.version_id or ""))
            )
    if not owed:
        return 0
    return add_missing(open_outbox(outbox_dir if outbox_dir is not None else data_dir), [e.to_dict() for e in owed])
