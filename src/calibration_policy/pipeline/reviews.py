"""The review changes a person makes: approve, modify, reject a suggestion, roll back a live config, and
propose or review a policy.

Each builds a :class:`~calibration_policy.context.Context` and a change, and lets the governor run it:
the permission (on the suggestion's domain), four-eyes, settling, the intent, the lock and version
check, validation and events are the governor's, never these functions'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..archive import ArchiveEntry
from ..changes import Approve, Modify, PolicyPropose, PolicyReview, Reject, RollBack
from ..context import Context
from ..governor import Governor
from ..policy import CalibrationUpdatePolicy
from ..policy_versions import PolicyProposal
from ..review import Suggestion
from ..stores import open_reviews
from ..target import Target


def _store(suggestions: Any) -> Any:
    return suggestions if hasattr(suggestions, "holding") else open_reviews(suggestions)


def _context(store: Any, actor: Any, via: str, permissions: Any, history_dir: Any, archive_dir: Any) -> Context:
    return Context.build(
        actor=actor,
        via=via,
        permissions=permissions,
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=getattr(store, "directory", None),
    )


def approve_suggestion(
    suggestions: Any,
    suggestion_id: str,
    *,
    target: Target,
    reviewer: Any = None,
    notes: str | None = None,
    archive_dir: Any = None,
    history_dir: Any = None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
) -> Suggestion:
    """Make a pending suggestion's values live as they are (``suggestions``: a ReviewStore or its folder),
    or, when the policy wants more approvers than this one, record the approval and keep waiting.

    ``actor`` (or ``reviewer``) needs the ``approve`` permission, then passes the four-eyes rule; ``policy``
    (a domain's own settings) may narrow the policy in force, never widen it."""
    store = _store(suggestions)
    ctx = _context(store, actor if actor is not None else reviewer, via, permissions, history_dir, archive_dir)
    change = Approve(store, suggestion_id, target, notes, expected_version, policy)
    return Governor(ctx).execute(change)


def modify_suggestion(
    suggestions: Any,
    suggestion_id: str,
    values: Mapping[str, Any],
    *,
    target: Target,
    reviewer: Any = None,
    notes: str | None = None,
    archive_dir: Any = None,
    history_dir: Any = None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
) -> Suggestion:
    """Make the reviewer's own values live instead of the suggested ones, after the domain validated them
    (under the four-eyes rule the modified values wait for another person's approval)."""
    store = _store(suggestions)
    ctx = _context(store, actor if actor is not None else reviewer, via, permissions, history_dir, archive_dir)
    change = Modify(store, suggestion_id, target, notes, expected_version, policy, values)
    return Governor(ctx).execute(change)


def reject_suggestion(
    suggestions: Any,
    suggestion_id: str,
    *,
    reviewer: Any = None,
    notes: str | None = None,
    target: Target | None = None,
    archive_dir: Any = None,
    history_dir: Any = None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
) -> Suggestion:
    """Close a pending suggestion without touching the live config; its run then says why nothing went live.

    With ``target``, whatever a killed process left half done on it is settled first (a killed approval
    that reached the live config is completed, and this rejection then refused)."""
    store = _store(suggestions)
    ctx = _context(store, actor if actor is not None else reviewer, via, permissions, history_dir, archive_dir)
    change = Reject(store, suggestion_id, target, notes, expected_version, policy)
    return Governor(ctx).execute(change)


def roll_back(
    target: Target,
    to: str,
    *,
    archive_dir: Any = None,
    actor: Any = "user",
    domain: str | None = None,
    history_dir: Any = None,
    expected_version: str | None = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
    notes: str | None = None,
) -> ArchiveEntry:
    """Make an archived value set live again; the rollback is itself a recorded, archived change.

    ``to`` names the set by the change that made it live (its ``change_id``), or ``original``
    for the config as it was before the first recorded change. ``domain`` defaults to the
    domain of the target's archived changes, so the reason says "weights" or "IV multipliers".
    ``actor`` needs the ``roll_back`` permission on that domain (checked before anything is written).
    """
    ctx = Context.build(actor=actor, via=via, permissions=permissions, history_dir=history_dir, archive_dir=archive_dir)
    return Governor(ctx).execute(RollBack(target, to, domain, notes, expected_version, policy))


def propose_policy(
    policy: CalibrationUpdatePolicy,
    *,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
    data_dir: Any = None,
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
) -> PolicyProposal:
    """Leave a candidate policy for a reviewer (``actor`` needs ``propose``); nothing changes until it is
    approved, and the proposal is announced (``change_made``, the outbox) like every other change."""
    ctx = Context.build(actor=actor, via=via, permissions=permissions, data_dir=data_dir)
    return Governor(ctx).execute(PolicyPropose(policy, reason, evidence, data_dir))


def review_policy(
    proposal_id: str,
    *,
    approve: bool,
    notes: str = "",
    data_dir: Any = None,
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
) -> PolicyProposal:
    """Approve a policy proposal (a new policy version goes live) or reject it; ``actor`` needs
    ``change_policy`` and passes the four-eyes rule."""
    ctx = Context.build(actor=actor, via=via, permissions=permissions, data_dir=data_dir)
    return Governor(ctx).execute(PolicyReview(proposal_id, approve, notes, data_dir))
