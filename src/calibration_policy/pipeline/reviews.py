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
from ..changes import Approve, Modify, PolicyPropose, PolicyReview, PolicyRollBack, PolicySet, Reject, RollBack
from ..context import Context
from ..governor import Governor
from ..policy import CalibrationUpdatePolicy
from ..policy_versions import PolicyProposal, PolicyVersion
from ..review import Suggestion
from ..stores import open_reviews
from ..target import Target


def _reviews(ctx: Context) -> Any:
    return open_reviews(ctx.suggestions_dir)


def _context(context: Context | None) -> Context:
    return context if context is not None else Context.build()


def approve_suggestion(
    suggestion_id: str,
    *,
    target: Target,
    notes: str | None = None,
    expected_version: str | None = None,
    context: Context | None = None,
) -> Suggestion:
    """Make a pending suggestion's values live as they are, or, when the policy wants more approvers than
    this one, record the approval and keep waiting.

    The context's actor needs the ``approve`` permission on the suggestion's domain, then passes the
    four-eyes rule; the context's own policy (a domain's settings) may narrow the policy in force, never
    widen it. The suggestion is looked up in the context's suggestions folder (or store)."""
    ctx = _context(context)
    change = Approve(_reviews(ctx), suggestion_id, target, notes, expected_version)
    return Governor(ctx).execute(change)


def modify_suggestion(
    suggestion_id: str,
    values: Mapping[str, Any],
    *,
    target: Target,
    notes: str | None = None,
    expected_version: str | None = None,
    context: Context | None = None,
) -> Suggestion:
    """Make the reviewer's own values live instead of the suggested ones, after the domain validated them
    (under the four-eyes rule the modified values wait for another person's approval)."""
    ctx = _context(context)
    change = Modify(_reviews(ctx), suggestion_id, target, notes, expected_version, values=values)
    return Governor(ctx).execute(change)


def reject_suggestion(
    suggestion_id: str,
    *,
    target: Target | None = None,
    notes: str | None = None,
    expected_version: str | None = None,
    context: Context | None = None,
) -> Suggestion:
    """Close a pending suggestion without touching the live config; its run then says why nothing went live.

    With ``target``, whatever a killed process left half done on it is settled first (a killed approval
    that reached the live config is completed, and this rejection then refused)."""
    ctx = _context(context)
    change = Reject(_reviews(ctx), suggestion_id, target, notes, expected_version)
    return Governor(ctx).execute(change)


def roll_back(
    target: Target,
    to: str,
    *,
    domain: str | None = None,
    notes: str | None = None,
    expected_version: str | None = None,
    context: Context | None = None,
) -> ArchiveEntry:
    """Make an archived value set live again; the rollback is itself a recorded, archived change.

    ``to`` names the set by the change that made it live (its ``change_id``), or ``original``
    for the config as it was before the first recorded change. ``domain`` defaults to the
    domain of the target's archived changes, so the reason says "weights" or "IV multipliers".
    The context's actor (default "user") needs the ``roll_back`` permission on that domain (checked
    before anything is written).
    """
    ctx = _context(context).acting("user")
    return Governor(ctx).execute(RollBack(target, to, domain, notes, expected_version))


def propose_policy(
    policy: CalibrationUpdatePolicy,
    *,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> PolicyProposal:
    """Leave a candidate policy for a reviewer (the context's actor needs ``propose``); nothing changes
    until it is approved, and the proposal is announced (``change_made``, the outbox) like every other
    change."""
    ctx = _context(context)
    return Governor(ctx).execute(PolicyPropose(policy, reason, evidence, ctx.data_dir))


def review_policy(
    proposal_id: str,
    *,
    approve: bool,
    notes: str = "",
    context: Context | None = None,
) -> PolicyProposal:
    """Approve a policy proposal (a new policy version goes live) or reject it; the context's actor needs
    ``change_policy`` and passes the four-eyes rule."""
    ctx = _context(context)
    return Governor(ctx).execute(PolicyReview(proposal_id, approve, notes, ctx.data_dir))


def set_policy(policy: CalibrationUpdatePolicy, *, reason: str, context: Context | None = None) -> PolicyVersion:
    """Make ``policy`` the live policy at once (the context's actor needs ``change_policy``): archived as a new
    version with who and why, written as the data root's policy TOML, and announced like every change."""
    ctx = _context(context)
    return Governor(ctx).execute(PolicySet(policy, reason, ctx.data_dir))


def roll_back_policy(to: str, *, reason: str, context: Context | None = None) -> PolicyVersion:
    """Make an earlier policy version (``to``: its id or fingerprint) live again, as a new version; the
    context's actor needs ``change_policy``."""
    ctx = _context(context)
    return Governor(ctx).execute(PolicyRollBack(to, reason, ctx.data_dir))
