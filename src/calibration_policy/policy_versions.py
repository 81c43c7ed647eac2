"""Policy versions: every change of the policy archived with who and why, so a run can say which
policy decided it, ``as_of`` can say which policy was live on a date, and a policy can be rolled back.

``<data root>/policy_versions/<UTC stamp>.json`` holds one version each: ``version_id`` (the file
name), ``fingerprint`` (what a run records as ``policy_version``), ``at``, ``actor``, ``reason``,
``kind`` (change or rollback), ``rolled_back_to`` and the whole ``policy``. Versions are never
edited; a rollback is a new version holding an old policy. :meth:`PolicyVersions.record` writes the policy TOML
the pipeline reads (``<data root>/calibration_policy.toml``) after archiving it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import CalibrationPolicyError, PolicyError, StaleChangeError

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


def policy_to_toml(policy: Any, header: str = "", with_store: bool = False) -> str:
    """The policy as TOML that :meth:`CalibrationUpdatePolicy.from_toml` reads back to an equal policy,
    apart from ``store`` unless ``with_store`` (see :func:`decision_settings`)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    settings = policy.model_dump(mode="python") if with_store else decision_settings(policy, mode="python")
    for key, value in settings.items():
        if value is None:
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# -- what a change of the policy changes, setting by setting ---------------------------------------------

FOUR_EYES_SETTINGS = ("require_approval", "require_distinct_approver", "required_approvals", "force_requires_approval")
SENSITIVE = {
    "permissions": "who may do what",
    **dict.fromkeys(FOUR_EYES_SETTINGS, "four-eyes"),
    "store": "where the records are kept",
}


@dataclass(frozen=True)
class SettingChange:
    """One setting a policy change changes: a dotted name (``permissions.users.mallory``), its value before and
    after (None: not set), and, for a setting that governs who decides or where records go, why it is sensitive."""

    setting: str
    before: Any
    after: Any
    sensitive: str | None = None

    @property
    def text(self) -> str:
        line = f"{self.setting}: {_shown(self.before)} → {_shown(self.after)}"
        return line + (f" (sensitive: {self.sensitive})" if self.sensitive else "")

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "before": self.before, "after": self.after, "sensitive": self.sensitive}


def _shown(value: Any) -> str:
    if value is None:
        return "not set"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else _toml_value(value)


def _settings(policy: Any) -> dict[str, Any]:
    """Every setting of ``policy`` (a policy or its dict), nested tables flattened to dotted names, the store's
    password masked: what a reviewer compares."""
    from .policy import CalibrationUpdatePolicy
    from .redact import mask

    if not isinstance(policy, CalibrationUpdatePolicy):
        policy = CalibrationUpdatePolicy.from_dict(dict(policy))
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):  # an empty table, like a setting left out, is "not set"
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif value is not None:
            flat[prefix] = value

    for key, value in policy.model_dump(mode="json").items():
        walk(key, mask(value) if key == "store" and value else value)
    return flat


def policy_diff(old: Any, new: Any) -> list[SettingChange]:
    """Every setting that differs between two policies (or their dicts), in the policy's order; changes to
    ``[permissions]``, the four-eyes settings and ``store`` say they are sensitive, so none is approved unseen."""
    before, after = _settings(old), _settings(new)
    names = list(before) + [name for name in after if name not in before]
    return [
        SettingChange(name, before.get(name), after.get(name), SENSITIVE.get(name.partition(".")[0]))
        for name in names
        if before.get(name) != after.get(name)
    ]


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
    via: str | None = None
    replaced: dict[str, Any] | None = None  # the settings in force just before: what this version changed
    announced: bool = False  # its own event says it went live (one made by approving a proposal: the proposal's)

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
            "via": self.via,
            "replaced": self.replaced,
            "announced": self.announced,
        }

    def load(self):
        from .policy import CalibrationUpdatePolicy

        return CalibrationUpdatePolicy.from_dict(dict(self.policy))


@dataclass(frozen=True)
class _PolicyLock:
    """What :func:`~calibration_policy.stores.locked` needs to serialize the policy's changes on either store."""

    name: str
    lock_path: Path


POLICY_TARGET = "calibration_policy"  # the name the policy's lock and intents go by


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
                        data.get("via"),
                        data.get("replaced"),
                        bool(data.get("announced", False)),
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

    def changed_by(self, version_id: str) -> list[SettingChange]:
        """What a version changed: every setting from the policy it replaced (for a version recorded before
        versions said so: the version before it, else the built-in defaults)."""
        from .policy import CalibrationUpdatePolicy

        done = self.versions()
        version = self.get(version_id)
        index = next(i for i, v in enumerate(done) if v.version_id == version.version_id)
        before = version.replaced if version.replaced is not None else done[index - 1].policy if index else {}
        return policy_diff(CalibrationUpdatePolicy.from_dict(dict(before)), version.load())

    # -- changing the policy: checked, merged over the file it replaces, archived, then written -------------

    def in_force(self) -> Any:
        """The policy deciding now: it, not the incoming one, says who may change it."""
        from .policy import CalibrationUpdatePolicy

        return CalibrationUpdatePolicy.load(data_dir=self.data_dir)

    def _file_settings(self) -> dict[str, Any]:
        from .policy import read_toml

        if not self.policy_path.is_file():
            return {}
        data = read_toml(self.policy_path, "Policy file")
        return data["policy"] if set(data) == {"policy"} and isinstance(data["policy"], dict) else data

    def incoming(self, policy: Any) -> Any:
        """What recording ``policy`` makes live: the settings it names over the file it replaces, so a setting it
        leaves out (``store``, which no version holds; a table an older proposal never had) is kept, never dropped."""
        from .policy import CalibrationUpdatePolicy

        if not isinstance(policy, CalibrationUpdatePolicy):
            raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
        named = policy.model_dump(mode="json", include=set(policy.model_fields_set))
        if named.get("store") is None:
            named.pop("store", None)
        return CalibrationUpdatePolicy.from_dict({**self._file_settings(), **named})

    def diff(self, policy: Any) -> list[SettingChange]:
        """Every setting recording ``policy`` would change in the policy in force."""
        return policy_diff(self.in_force(), self.incoming(policy))

    def lock(self) -> Any:
        """``with versions.lock():`` — one policy change at a time (a lock file in the data root, or the database's)."""
        from .stores import locked

        self.data_dir.mkdir(parents=True, exist_ok=True)
        return locked(_PolicyLock(POLICY_TARGET, self.data_dir / ".calibration_policy.toml.lock"))

    def record(
        self,
        policy: Any,
        *,
        actor: str,
        reason: str,
        via: str = "python",
        kind: Literal["change", "rollback"] = "change",
        rolled_back_to: str | None = None,
        at: datetime | None = None,
    ) -> PolicyVersion:
        """Make ``policy`` live, archived as a new version with who and why, then written as the data root's
        policy TOML. Who acts was checked by the governor (the policy changes in :mod:`calibration_policy.changes`
        are the only callers, which ``tests/test_writers.py`` enforces), so it is checked once, in one place."""
        return self._change(
            policy, actor=actor, reason=reason, via=via, kind=kind, rolled_back_to=rolled_back_to, at=at
        )

    def rollback(self, to: str, *, actor: str, reason: str, via: str = "python") -> PolicyVersion:
        """Make an earlier version live again, as a new version (kind rollback)."""
        old = self.get(to)
        return self.record(
            old.load(), actor=actor, reason=reason, via=via, kind="rollback", rolled_back_to=old.version_id
        )

    def _change(
        self,
        policy: Any,
        *,
        actor: str,
        reason: str,
        via: str,
        kind: Literal["change", "rollback"] = "change",
        rolled_back_to: str | None = None,
        at: datetime | None = None,
        proposal: tuple[PolicyProposals, PolicyProposal, str | None] | None = None,
    ) -> PolicyVersion:
        """The change itself, for a caller that checked who acts: intent, lock, merge, archive, write, done."""
        from .policy import CalibrationUpdatePolicy
        from .stores import intents

        if not isinstance(policy, CalibrationUpdatePolicy):
            raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
        for what, text in (("actor", actor), ("reason", reason)):
            if not isinstance(text, str) or not text.strip():
                raise CalibrationPolicyError(f"A policy change needs a {what} (who changed it and why).")
        self.settle_interrupted()
        info = {"proposal_id": proposal[1].proposal_id, "notes": proposal[2]} if proposal else {}
        intent = intents().begin(self.directory, POLICY_TARGET, "policy", actor=actor.strip(), via=via, **info)
        try:
            with self.lock():
                if proposal is not None:
                    proposals, pending, _ = proposal
                    pending = proposals.get(pending.proposal_id)  # under the lock: two reviewers, one approval
                    if pending.status != "pending":
                        raise StaleChangeError(
                            f"Policy proposal {pending.proposal_id} was {pending.status} by "
                            f"{pending.reviewer or 'someone'} meanwhile; nothing was changed."
                        )
                effective, replaced = self.incoming(policy), decision_settings(self.in_force())
                at = at or datetime.now(UTC)
                payload = PolicyVersion(
                    "",
                    policy_fingerprint(effective),
                    at,
                    actor.strip(),
                    reason.strip(),
                    kind,
                    decision_settings(effective),
                    rolled_back_to,
                    via,
                    replaced,
                    announced=proposal is None,
                ).to_dict()
                del payload["version_id"]
                version_id = self.box.create(at, payload)
                intent.note(version_id=version_id)
                version = self.get(version_id)
                self._write(effective, version)
                if proposal is not None:
                    proposals, pending, notes = proposal
                    proposals._settle(
                        pending,
                        status="approved",
                        reviewer=actor.strip(),
                        notes=notes or None,
                        version_id=version_id,
                        announced={**pending.announced, "approved": via},
                    )
        except Exception:  # refused or failed: settled now (a version archived is written), else by the next change
            try:
                self._settle_one(intent.data)
            except Exception:
                intent.release()
            else:
                intent.done()
            raise
        except BaseException:
            intent.release()  # killed: the next change settles what got done (see settle_interrupted)
            raise
        intent.done()
        return version

    def _write(self, effective: Any, version: PolicyVersion) -> None:
        """The one place the data root's policy TOML is written: the whole incoming policy and its store."""
        from .durable import atomic_replace

        header = (
            f"Policy version {version.version_id} ({version.fingerprint}), set by {version.actor}: {version.reason}"
        )
        atomic_replace(self.policy_path, policy_to_toml(effective, header, with_store=True).encode())

    def settle_interrupted(self) -> list[str]:
        """Finish a policy change a killed process left half done: a version archived but not yet written
        to the policy file is written (if still the newest), and its proposal recorded as approved."""
        from .stores import intents

        settled = []
        for intent in intents().abandoned(self.directory, POLICY_TARGET):
            try:
                settled.append(self._settle_one(intent.data))
            except BaseException:
                intent.release()
                raise
            intent.done()
        return settled

    def _settle_one(self, data: dict[str, Any]) -> str:
        version_id = data.get("version_id")
        current = self.current()
        if not version_id or current is None or current.version_id != version_id:
            return "a policy change never reached the archive of versions: nothing changed."
        with self.lock():
            self._write(self.incoming(current.load()), current)  # the same text again when it got there
            proposal_id = data.get("proposal_id")
            if proposal_id:
                proposals = PolicyProposals(self.data_dir)
                try:
                    pending = proposals.get(proposal_id)
                except CalibrationPolicyError:
                    pending = None
                if pending is not None and pending.status == "pending":
                    proposals._settle(
                        pending,
                        status="approved",
                        reviewer=current.actor,
                        notes=data.get("notes") or None,
                        version_id=version_id,
                        announced={**pending.announced, "approved": current.via or "python"},
                    )
        return f"policy version {version_id} had been archived: it is now the policy file too."


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
    announced: dict[str, str] = field(default_factory=dict)  # status → via, for each status an event announces

    @property
    def proposed_by(self) -> str:
        """The proposer, as the four-eyes rule reads every reviewed item."""
        return self.proposer

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
            "announced": self.announced,
        }


class PolicyProposals:
    """Candidate policies waiting for a person (``<data>/policy_versions/proposals/``)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        from .stores import active_store

        self.versions = PolicyVersions(data_dir)
        self.directory = self.versions.directory / "proposals"
        self.box = active_store().records("policy_proposals", self.directory)

    def propose(
        self,
        policy: Any,
        *,
        actor: str,
        reason: str,
        via: str = "python",
        evidence: Mapping[str, Any] | None = None,
    ) -> PolicyProposal:
        """Put ``policy`` up for review (who proposes was checked by the governor); nothing goes live."""
        from .policy import CalibrationUpdatePolicy

        if not isinstance(policy, CalibrationUpdatePolicy):
            raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
        if not isinstance(reason, str) or not reason.strip():
            raise CalibrationPolicyError("A policy proposal needs a reason.")
        if evidence is not None and not isinstance(evidence, Mapping):
            raise CalibrationPolicyError(
                "The evidence must be a JSON object of named figures, such as "
                f'{{"applies": 12}}; got {type(evidence).__name__} {str(evidence)[:40]}.'
            )
        evidence = dict(evidence) if evidence else None
        at = datetime.now(UTC)
        proposal = PolicyProposal(
            "", at, actor, reason.strip(), decision_settings(policy), evidence=evidence, announced={"pending": via}
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
                dict(data.get("announced") or {}),
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

    def diff(self, proposal_id: str) -> list[SettingChange]:
        """Every setting approving the proposal would change in the policy in force: what a reviewer reads."""
        from .policy import CalibrationUpdatePolicy

        proposal = self.get(proposal_id)
        return self.versions.diff(CalibrationUpdatePolicy.from_dict(dict(proposal.policy)))

    def _settle(self, proposal: PolicyProposal, **changes: Any) -> PolicyProposal:
        from dataclasses import replace

        done = replace(proposal, **changes)
        self.box.replace(proposal.proposal_id, {k: v for k, v in done.to_dict().items() if k != "proposal_id"})
        return done

    def pending_one(self, proposal_id: str, action: str) -> PolicyProposal:
        """The proposal, while it is still pending; else a sentence saying who settled it (nothing written)."""
        proposal = self.get(proposal_id)
        if proposal.status != "pending":
            raise StaleChangeError(
                f"Policy proposal {proposal_id} was already {proposal.status} by {proposal.reviewer or 'someone'}; "
                f"nothing was {action}."
            )
        return proposal

    def approve(self, proposal_id: str, *, actor: str, via: str = "python", notes: str = "") -> PolicyProposal:
        """The reviewer makes the proposed policy live: a new version with who and why. Who reviews (and the
        four-eyes rule) was checked by the governor's policy review."""
        from .policy import CalibrationUpdatePolicy

        proposal = self.pending_one(proposal_id, "changed")
        self.versions._change(
            CalibrationUpdatePolicy.from_dict(dict(proposal.policy)),
            actor=actor,
            reason=f"{proposal.reason} (proposed by {proposal.proposer}, approved"
            + (f": {notes.strip()})" if notes.strip() else ")"),
            via=via,
            proposal=(self, proposal, notes),
        )
        return self.get(proposal.proposal_id)

    def reject(self, proposal_id: str, *, actor: str, via: str = "python", notes: str = "") -> PolicyProposal:
        """The reviewer turns the proposal down (checked by the governor); the live policy is unchanged."""
        self.pending_one(proposal_id, "rejected")
        with self.versions.lock():
            proposal = self.get(proposal_id)  # under the lock: an approval that got here first wins
            if proposal.status != "pending":
                raise StaleChangeError(
                    f"Policy proposal {proposal_id} was {proposal.status} by {proposal.reviewer or 'someone'} "
                    "meanwhile; nothing was rejected."
                )
            return self._settle(
                proposal,
                status="rejected",
                reviewer=actor,
                notes=notes or None,
                announced={**proposal.announced, "rejected": via},
            )
