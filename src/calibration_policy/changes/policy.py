"""Policy changes: a new policy version goes live, an earlier one comes back, or a proposal waits for review.

Thin wrappers over :mod:`calibration_policy.policy_versions` (which archives the version and writes the
policy TOML): the governor adds what they lacked — the ``change_policy`` permission of the policy in
force, and the event.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..governor import Change, Step
from ..policy import CalibrationUpdatePolicy
from ..policy_versions import (
    PolicyProposal,
    PolicyProposals,
    PolicyVersion,
    decision_settings,
    rollback_policy,
    set_policy,
)


@dataclass
class PolicySet(Change):
    """Make ``policy`` the live policy, archived with who and ``reason``."""

    policy: CalibrationUpdatePolicy
    reason: str
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_set"
    action = "change_policy"

    def intent(self) -> None:
        return None  # one version record, then the TOML written atomically

    def perform(self, step: Step) -> PolicyVersion:
        before = decision_settings(step.ctx.policy)
        version = set_policy(self.policy, **_as(step), reason=self.reason, data_dir=self.data_dir)
        _announce(step, version, "applied", before)
        return version


@dataclass
class PolicyRollBack(Change):
    """Make an earlier policy version (``to``: its id or fingerprint) live again, as a new version."""

    to: str
    reason: str
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_roll_back"
    action = "change_policy"

    def intent(self) -> None:
        return None

    def perform(self, step: Step) -> PolicyVersion:
        before = decision_settings(step.ctx.policy)
        version = rollback_policy(self.to, **_as(step), reason=self.reason, data_dir=self.data_dir)
        _announce(step, version, "rolled_back", before)
        return version


def _as(step: Step) -> dict[str, Any]:
    """Who acts, from where, and the host's check: policy_versions checks them again, by the same source."""
    return {"actor": step.actor, "via": step.ctx.via, "permissions": step.ctx.permissions}


def _announce(step: Step, version: PolicyVersion, status: str, before: dict[str, Any]) -> None:
    step.event(
        status,
        f"Policy version {version.version_id} ({version.fingerprint}) is live, set by {version.actor}: {version.reason}",
        domain=version.policy.get("domain"),
        before=before,
        after=dict(version.policy),
    )


@dataclass
class PolicyPropose(Change):
    """Leave a candidate policy for a reviewer; nothing changes until it is approved."""

    policy: CalibrationUpdatePolicy
    reason: str
    evidence: Mapping[str, Any] | None = None  # checked by the one proposal writer
    data_dir: str | os.PathLike[str] | None = None

    kind = "policy_propose"
    action = "propose"

    def intent(self) -> None:
        return None  # one proposal record

    def perform(self, step: Step) -> PolicyProposal:
        proposal = PolicyProposals(self.data_dir).propose(
            self.policy, **_as(step), reason=self.reason, evidence=self.evidence
        )
        step.event(
            "waiting",
            f"Policy proposed by {step.actor}: {proposal.reason}",
            domain=self.policy.domain,
            before=decision_settings(step.ctx.policy),
            after=dict(proposal.policy),
        )
        return proposal


@dataclass
class PolicyReview(Change):
    """A reviewer approves a policy proposal (a new policy version goes live) or rejects it."""

    proposal_id: str
    approve: bool
    notes: str = ""
    data_dir: str | os.PathLike[str] | None = None

    action = "change_policy"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "policy_approve" if self.approve else "policy_reject"

    def intent(self) -> None:
        return None  # the version, then the proposal's state: settled by the proposal's own check of its status

    def perform(self, step: Step) -> PolicyProposal:
        proposals = PolicyProposals(self.data_dir)
        before = decision_settings(step.ctx.policy)
        review = proposals.approve if self.approve else proposals.reject
        done = review(self.proposal_id, **_as(step), notes=self.notes)  # four-eyes: permissions.four_eyes, there
        step.event(
            "applied" if self.approve else "rejected",
            f"Policy proposal {done.proposal_id} by {done.proposer} {done.status} by {step.actor}"
            + (f": policy version {done.version_id} is live" if done.version_id else ""),
            domain=done.policy.get("domain"),
            before=before,
            after=dict(done.policy) if self.approve else None,
        )
        return done
