"""Policy versions: every change of the policy archived with who and why, so a run can say which
policy decided it, ``as_of`` can say which policy was live on a date, and a policy can be rolled back.

``<data root>/policy_versions/<UTC stamp>.json`` holds one version each: ``version_id`` (the file
name), ``fingerprint`` (what a run records as ``policy_version``), ``at``, ``actor``, ``reason``,
``kind`` (change or rollback), ``rolled_back_to`` and the whole ``policy``. Versions are never
edited; a rollback is a new version holding an old policy. :func:`set_policy` writes the policy TOML
the pipeline reads (``<data root>/calibration_policy.toml``) after archiving it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import CalibrationPolicyError, PolicyError

VERSIONS_DIR_NAME = "policy_versions"


def decision_settings(policy: Any, mode: str = "json") -> dict[str, Any]:
    """The settings that take decisions: every one but ``store``. Where the records live is no part of how
    decisions are taken (moving to another store keeps the version), and its URL may hold a password."""
    return policy.model_dump(mode=mode, exclude={"store"})


def policy_fingerprint(policy: Any) -> str:
    """A short, stable fingerprint of a policy's settings (the same settings give the same one)."""
    canonical = json.dumps(decision_settings(policy), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# -- TOML, written by hand: the policy's few shapes (numbers, strings, lists, nested tables) ----------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError(f"A policy cannot hold {value}.")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
            if value
            else "{}"
        )
    raise PolicyError(f"A policy cannot hold a {type(value).__name__}.")


def policy_to_toml(policy: Any, header: str = "") -> str:
    """The policy as TOML that :meth:`CalibrationUpdatePolicy.from_toml` reads back to an equal policy,
    apart from ``store`` (see :func:`decision_settings`)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    for key, value in decision_settings(policy, mode="python").items():
        if value is None:
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# -- the archive of versions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyVersion:
    version_id: str
    fingerprint: str
    at: datetime
    actor: str
    reason: str
    kind: Literal["change", "rollback"]
    policy: dict[str, Any]
    rolled_back_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "fingerprint": self.fingerprint,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "reason": self.reason,
            "kind": self.kind,
            "policy": self.policy,
            "rolled_back_to": self.rolled_back_to,
        }

    def load(self):
        from .policy import CalibrationUpdatePolicy

        return CalibrationUpdatePolicy.from_dict(dict(self.policy))


class PolicyVersions:
    """The policy versions of one data root (``<data>/policy_versions``)."""

    def __init__(
        self, data_dir: str | os.PathLike[str] | None = None, directory: str | os.PathLike[str] | None = None
    ) -> None:
        from .paths import data_root
        from .stores import active_store

        root = Path(data_dir) if data_dir is not None else data_root()
        self.data_dir = root
        self.directory = Path(directory) if directory is not None else root / VERSIONS_DIR_NAME
        self.policy_path = root / "calibration_policy.toml"
        self.box = active_store().records("policy_versions", self.directory)

    def versions(self) -> list[PolicyVersion]:
        """Every version, oldest first."""
        found = []
        for version_id, data in self.box.list():
            try:
                at = datetime.fromisoformat(data["at"])
                found.append(
                    PolicyVersion(
                        version_id,
                        data["fingerprint"],
                        at,
                        data["actor"],
                        data["reason"],
                        data.get("kind", "change"),
                        data["policy"],
                        data.get("rolled_back_to"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # a damaged record is skipped, never fatal
        return found

    def get(self, version_id: str) -> PolicyVersion:
        for version in self.versions():
            if version.version_id == version_id or version.fingerprint == version_id:
                return version
        raise CalibrationPolicyError(f"There is no policy version {version_id!r:.60} in {self.directory}.")

    def current(self) -> PolicyVersion | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def as_of(self, when: datetime) -> PolicyVersion | None:
        """The policy version live at ``when``; None before the first recorded version."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise CalibrationPolicyError("The date to look up must be a timezone-aware datetime (UTC).")
        live = None
        for version in self.versions():
            if version.at <= when:
                live = version
        return live

    def with_fingerprint(self, fingerprint: str) -> list[PolicyVersion]:
        """The versions a run's ``policy_version`` names (the same settings may have been live more than once)."""
        return [v for v in self.versions() if v.fingerprint == fingerprint]

    def record(
        self,
        policy: Any,
        *,
        actor: str,
        reason: str,
        kind: Literal["change", "rollback"] = "change",
        rolled_back_to: str | None = None,
        write_policy: bool = True,
        at: datetime | None = None,
    ) -> PolicyVersion:
        """Archive ``policy`` as the new live version, then write it as the data root's policy TOML."""
        from .durable import atomic_replace
        from .policy import CalibrationUpdatePolicy

        if not isinstance(policy, CalibrationUpdatePolicy):
            raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
        for what, text in (("actor", actor), ("reason", reason)):
            if not isinstance(text, str) or not text.strip():
                raise CalibrationPolicyError(f"A policy change needs a {what} (who changed it and why).")
        at = at or datetime.now(UTC)
        version = PolicyVersion(
            "",
            policy_fingerprint(policy),
            at,
            actor.strip(),
            reason.strip(),
            kind,
            decision_settings(policy),
            rolled_back_to,
        )
        payload = {k: v for k, v in version.to_dict().items() if k != "version_id"}
        version = PolicyVersion(
            self.box.create(at, payload),
            *[
                getattr(version, f)
                for f in ("fingerprint", "at", "actor", "reason", "kind", "policy", "rolled_back_to")
            ],
        )
        if write_policy:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            header = (
                f"Policy version {version.version_id} ({version.fingerprint}), set by {version.actor}: {version.reason}"
            )
            atomic_replace(self.policy_path, policy_to_toml(policy, header).encode())
        return version

    def rollback(self, to: str, *, actor: str, reason: str) -> PolicyVersion:
        """Make an earlier version live again, as a new version (kind rollback)."""
        old = self.get(to)
        return self.record(old.load(), actor=actor, reason=reason, kind="rollback", rolled_back_to=old.version_id)


def set_policy(
    policy: Any, *, actor: str, reason: str, data_dir: str | os.PathLike[str] | None = None
) -> PolicyVersion:
    """Change the live policy: archived with who and why, then written where the pipeline reads it."""
    return PolicyVersions(data_dir).record(policy, actor=actor, reason=reason)


def rollback_policy(
    to: str, *, actor: str, reason: str, data_dir: str | os.PathLike[str] | None = None
) -> PolicyVersion:
    """Put an earlier policy version back (the panel's changes timeline calls this)."""
    return PolicyVersions(data_dir).rollback(to, actor=actor, reason=reason)


def policy_as_of(when: datetime, data_dir: str | os.PathLike[str] | None = None) -> PolicyVersion | None:
    return PolicyVersions(data_dir).as_of(when)


# -- proposals: a candidate policy goes live only through review ---------------------------------------


@dataclass(frozen=True)
class PolicyProposal:
    proposal_id: str
    at: datetime
    proposer: str
    reason: str
    policy: dict[str, Any]
    status: Literal["pending", "approved", "rejected"] = "pending"
    reviewer: str | None = None
    notes: str | None = None
    version_id: str | None = None
    evidence: dict[str, Any] | None = None  # what the replay said when it was proposed

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "at": self.at.isoformat(),
            "proposer": self.proposer,
            "reason": self.reason,
            "policy": self.policy,
            "status": self.status,
            "reviewer": self.reviewer,
            "notes": self.notes,
            "version_id": self.version_id,
            "evidence": self.evidence,
        }


class PolicyProposals:
    """Candidate policies waiting for a person (``<data>/policy_versions/proposals/``)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        from .stores import active_store

        self.versions = PolicyVersions(data_dir)
        self.directory = self.versions.directory / "proposals"
        self.box = active_store().records("policy_proposals", self.directory)

    def propose(
        self, policy: Any, *, proposer: str, reason: str, evidence: dict[str, Any] | None = None
    ) -> PolicyProposal:
        from .policy import CalibrationUpdatePolicy

        if not isinstance(policy, CalibrationUpdatePolicy):
            raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
        if not isinstance(reason, str) or not reason.strip():
            raise CalibrationPolicyError("A policy proposal needs a reason.")
        at = datetime.now(UTC)
        proposal = PolicyProposal(
            "", at, proposer or "someone", reason.strip(), decision_settings(policy), evidence=evidence
        )
        payload = {k: v for k, v in proposal.to_dict().items() if k != "proposal_id"}
        return self.get(self.box.create(at, payload))

    @staticmethod
    def _proposal(proposal_id: str, data: dict[str, Any] | None) -> PolicyProposal | None:
        if data is None:
            return None
        try:
            return PolicyProposal(
                proposal_id,
                datetime.fromisoformat(data["at"]),
                data["proposer"],
                data["reason"],
                data["policy"],
                data.get("status", "pending"),
                data.get("reviewer"),
                data.get("notes"),
                data.get("version_id"),
                data.get("evidence"),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def all(self) -> list[PolicyProposal]:
        return [p for p in (self._proposal(i, d) for i, d in self.box.list()) if p is not None]

    def pending(self) -> list[PolicyProposal]:
        return [p for p in self.all() if p.status == "pending"]

    def get(self, proposal_id: str) -> PolicyProposal:
        from .naming import check_record_id

        checked = check_record_id(proposal_id, "proposal id")
        found = self._proposal(checked, self.box.read(checked))
        if found is None:
            raise CalibrationPolicyError(f"There is no policy proposal {proposal_id!r:.60}.")
        return found

    def _settle(self, proposal: PolicyProposal, **changes: Any) -> PolicyProposal:
        from dataclasses import replace

        done = replace(proposal, **changes)
        self.box.replace(proposal.proposal_id, {k: v for k, v in done.to_dict().items() if k != "proposal_id"})
        return done

    def approve(self, proposal_id: str, *, reviewer: str, notes: str = "") -> PolicyProposal:
        """The reviewer makes the proposed policy live: a new version with who and why."""
        proposal = self.get(proposal_id)
        if proposal.status != "pending":
            raise CalibrationPolicyError(f"Policy proposal {proposal_id} was already {proposal.status}.")
        if not reviewer:
            raise CalibrationPolicyError("Approving a policy needs a reviewer's name.")
        from .policy import CalibrationUpdatePolicy

        live = CalibrationUpdatePolicy.load(data_dir=self.versions.data_dir)
        if live.require_distinct_approver and reviewer.strip().casefold() == proposal.proposer.strip().casefold():
            raise CalibrationPolicyError(
                f"{reviewer} proposed this policy, and the live policy wants another person to "
                "approve a change (require_distinct_approver); nothing was changed."
            )

        version = self.versions.record(
            CalibrationUpdatePolicy.from_dict(dict(proposal.policy)),
            actor=reviewer,
            reason=f"{proposal.reason} (proposed by {proposal.proposer}, approved"
            + (f": {notes.strip()})" if notes.strip() else ")"),
        )
        return self._settle(
            proposal, status="approved", reviewer=reviewer, notes=notes or None, version_id=version.version_id
        )

    def reject(self, proposal_id: str, *, reviewer: str, notes: str = "") -> PolicyProposal:
        proposal = self.get(proposal_id)
        if proposal.status != "pending":
            raise CalibrationPolicyError(f"Policy proposal {proposal_id} was already {proposal.status}.")
        return self._settle(proposal, status="rejected", reviewer=reviewer or "someone", notes=notes or None)
