"""Tamper evidence for the policy: an edit of the policy file made outside calibration-policy is noticed,
recorded and shown, and (with ``refuse_unrecorded_edits``) not acted on until someone accepts it.

Every change made through calibration-policy (``policy set``, a rollback, an approved proposal) is archived as
a policy version first; so when the data root's policy file holds other settings than the newest version,
someone wrote the file by hand (or a tool did). The first time a process loads such a file, the edit is kept
in ``policy_versions/out_of_band/``: who (``edited outside calibration-policy``), when it was noticed, and the
settings that differ. The panel warns on every page and ``doctor`` reports it until ``policy accept`` records
the file as a new version (by someone allowed to ``change_policy``).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import PolicyError

WHO = "edited outside calibration-policy"
_accepting: ContextVar[bool] = ContextVar("calibration_policy_accepting_edit", default=False)
EDITS_DIR = Path("policy_versions") / "out_of_band"


class UnrecordedEditError(PolicyError):
    """The policy file was edited outside calibration-policy and the policy refuses to act on it until accepted."""


@dataclass(frozen=True)
class OutOfBandEdit:
    noticed_at: datetime
    fingerprint: str  # of the file's settings
    recorded: str  # the newest recorded version's fingerprint
    recorded_version: str
    diff: tuple[str, ...]  # "min_delta_global: 0.03 → 0.0"

    def sentence(self) -> str:
        changes = "; ".join(self.diff[:5]) + (f"; and {len(self.diff) - 5} more" if len(self.diff) > 5 else "")
        return (
            f"The policy file was {WHO} (noticed {self.noticed_at:%Y-%m-%d %H:%M} UTC): it differs from the last "
            f"recorded version {self.recorded_version} ({changes or 'the same settings, written differently'}). "
            "Someone allowed to change the policy should review it and run `calibration-policy policy accept`."
        )


def _diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        f"{key}: {old.get(key, '(unset)')!r:.60} → {new.get(key, '(unset)')!r:.60}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    )


def _box(data_dir: Path) -> Any:
    from .stores.records import FolderRecords

    return FolderRecords(data_dir / EDITS_DIR)


def unrecorded_edit(policy: Any, data_dir: str | os.PathLike[str]) -> OutOfBandEdit | None:
    """The out-of-band edit ``policy`` (loaded from ``data_dir``'s policy file) is, recorded the first time it is
    seen; None when the file matches the newest recorded version (or no version was ever recorded)."""
    from .policy_versions import PolicyVersions, decision_settings, policy_fingerprint

    root = Path(data_dir)
    current = PolicyVersions(root).current()
    if current is None:
        return None
    fingerprint = policy_fingerprint(policy)
    # the recorded settings read as a policy today (a setting added since takes its default): not a hand edit
    if fingerprint in (current.fingerprint, _fingerprint_now(current)):
        return None
    box = _box(root)
    for _, data in reversed(box.list()):
        if data.get("fingerprint") == fingerprint and data.get("recorded") == current.fingerprint:
            return _edit(data)
    data = {
        "who": WHO,
        "noticed_at": datetime.now(UTC).isoformat(),
        "fingerprint": fingerprint,
        "recorded": current.fingerprint,
        "recorded_version": current.version_id,
        "diff": list(_diff(current.policy, decision_settings(policy))),
    }
    try:
        box.create(datetime.now(UTC), data)
    except (OSError, ValueError):
        pass  # a read-only data folder: the edit is still shown and refused, only not kept
    return _edit(data)


def _fingerprint_now(version: Any) -> str | None:
    from .policy_versions import policy_fingerprint

    try:
        return policy_fingerprint(version.load())
    except (PolicyError, ValueError):
        return None


def _edit(data: dict[str, Any]) -> OutOfBandEdit:
    return OutOfBandEdit(
        datetime.fromisoformat(data["noticed_at"]),
        data["fingerprint"],
        data["recorded"],
        data.get("recorded_version", "?"),
        tuple(data.get("diff", ())),
    )


def check_loaded(policy: Any, data_dir: str | os.PathLike[str]) -> None:
    """What loading the data root's policy file runs: notice an out-of-band edit, and refuse it when the last
    *recorded* version says so (the edited file cannot switch the refusal off by itself)."""
    from .policy_versions import PolicyVersions

    edit = unrecorded_edit(policy, data_dir)
    if edit is None or _accepting.get():
        return
    current = PolicyVersions(Path(data_dir)).current()
    if current is not None and current.policy.get("refuse_unrecorded_edits") is True:
        raise UnrecordedEditError(
            edit.sentence().replace("should review it", "must review it before anything is decided with it")
        )


def load_in_force(path: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """``CalibrationUpdatePolicy.load(path, data_dir)``, and when that is the data root's own policy file, the check
    for an outside edit (:func:`check_loaded`): how the CLI, the panel and ``serve`` load the policy in force."""
    from .paths import POLICY_ENV, POLICY_FILE_NAME, data_root
    from .policy import CalibrationUpdatePolicy

    policy = CalibrationUpdatePolicy.load(path, data_dir=data_dir)
    root = Path(data_dir) if data_dir is not None else data_root()
    if path is None and not os.environ.get(POLICY_ENV) and (root / POLICY_FILE_NAME).is_file():
        check_loaded(CalibrationUpdatePolicy.from_toml(root / POLICY_FILE_NAME), root)
    return policy


def accept(data_dir: str | os.PathLike[str], *, actor: str, reason: str = "", via: str = "cli") -> Any:
    """Record the policy file as it is now as a new version; ``actor`` needs ``change_policy`` by the last
    *recorded* version (the edited file cannot grant it)."""
    from .paths import POLICY_FILE_NAME
    from .permissions import check
    from .policy import CalibrationUpdatePolicy
    from .policy_versions import PolicyVersions

    root = Path(data_dir)
    policy = CalibrationUpdatePolicy.from_toml(root / POLICY_FILE_NAME)
    edit = unrecorded_edit(policy, root)
    if edit is None:
        raise PolicyError("The policy file matches the last recorded version; there is no outside edit to accept.")
    versions = PolicyVersions(root)
    last = versions.current()
    if last is None:  # an outside edit is measured against a recorded version, so there is one
        raise PolicyError("No policy version is recorded yet; there is no outside edit to accept.")
    recorded = last.load()
    name = check("change_policy", actor=actor, domain=recorded.domain, via=via, policy=recorded)
    token = _accepting.set(True)  # recording it loads the file in force: not refused while it is being accepted
    try:
        return versions._change(
            policy,
            actor=name,
            reason=reason
            or f"accepted an edit of the policy file made outside calibration-policy ({'; '.join(edit.diff)})",
            via=via,
        )
    finally:
        _accepting.reset(token)
