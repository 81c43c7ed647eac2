"""Policy changes: a new policy version goes live, an earlier one comes back, or a proposal waits for review.

Thin wrappers over :mod:`calibration_policy.policy_versions` (which archives the version and writes the
policy TOML): who acts (``change_policy`` or ``propose``, by the policy in force), the four-eyes rule and
the event are the governor's, checked once here rather than again in the store of versions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import events
from ..context import Context
from ..governor import Change, Step
from ..policy import CalibrationUpdatePolicy
from ..policy_events import proposal_event, settle_policy_events, version_event
from ..policy_versions import (
    PolicyProposal,
    PolicyProposals,
    PolicyVersion,
    PolicyVersions,
    decision_settings,
)


class _PolicyChange(Change):
    """A change of the policy: before it, any earlier policy change's lost event is added (see
    :mod:`calibration_policy.policy_events`)."""

    data_dir: str | os.PathLike[str] | None

    def intent(self) -> None:
        return None  # policy_versions keeps its own intent around the version and the policy file

    def settle(self, ctx: Context) -> list[str]:
        added = settle_policy_events(self.data_dir, ctx.archive_dir.parent)
        return [f"{added} policy change(s) announced that a killed process had not announced."] if added else []


@dataclass
class PolicySet(_PolicyChange):
    """Make ``policy`` the live policy, archived with who and ``reason``."""

    policy: CalibrationUpdatePolicy
    reason: str
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_set"
    action = "change_policy"

    def perform(self, step: Step) -> PolicyVersion:
        before = decision_settings(step.ctx.policy)
        version = PolicyVersions(self.data_dir).record(self.policy, **_as(step), reason=self.reason)
        events.record(step.ctx, version_event(version, before))
        return version


@dataclass
class PolicyRollBack(_PolicyChange):
    """Make an earlier policy version (``to``: its id or fingerprint) live again, as a new version."""

    to: str
    reason: str
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_roll_back"
    action = "change_policy"

    def perform(self, step: Step) -> PolicyVersion:
        before = decision_settings(step.ctx.policy)
        version = PolicyVersions(self.data_dir).rollback(self.to, **_as(step), reason=self.reason)
        events.record(step.ctx, version_event(version, before))
        return version


def _as(step: Step) -> dict[str, Any]:
    """Who acts (checked by the governor) and from where, as the store of versions records them."""
    return {"actor": step.actor, "via": step.ctx.via}


@dataclass
class PolicyPropose(_PolicyChange):
    """Leave a candidate policy for a reviewer; nothing changes until it is approved."""

    policy: CalibrationUpdatePolicy
    reason: str
    evidence: Mapping[str, Any] | None = None  # checked by the one proposal writer
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_propose"
    action = "propose"

    def perform(self, step: Step) -> PolicyProposal:
        proposal = PolicyProposals(self.data_dir).propose(
            self.policy, **_as(step), reason=self.reason, evidence=self.evidence
        )
        events.record(step.ctx, proposal_event(proposal, "pending", decision_settings(step.ctx.policy)))
        return proposal


@dataclass
class PolicyReview(_PolicyChange):
    """A reviewer approves a policy proposal (a new policy version goes live) or rejects it."""

    proposal_id: str
    approve: bool
    notes: str = ""
    data_dir: str | os.PathLike[str] | None = None

    action = "change_policy"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "policy_approve" if self.approve else "policy_reject"

    def prepare(self, ctx, actor) -> None:
        proposal = PolicyProposals(self.data_dir).pending_one(
            self.proposal_id, "changed" if self.approve else "rejected"
        )
        if self.approve:  # the one four-eyes rule, as for a suggestion
            ctx.four_eyes(proposal, actor, what=f"policy proposal {proposal.proposal_id}")

    def perform(self, step: Step) -> PolicyProposal:
        proposals = PolicyProposals(self.data_dir)
        before = decision_settings(step.ctx.policy)
        review = proposals.approve if self.approve else proposals.reject
        done = review(self.proposal_id, **_as(step), notes=self.notes)
        events.record(step.ctx, proposal_event(done, done.status, before))
        return done
