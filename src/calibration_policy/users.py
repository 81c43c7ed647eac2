"""Who may sign in to ``serve``: a users file of names, argon2 password hashes and roles, under the data root.

The name a person signs in with is who they are: the panel records it as the proposer or approver, so
four-eyes means two people. Roles here add to the policy's ``[permissions]`` table (which says what each
role may do); a user without the file's roles still has whatever the table gives them.

The file (``users.json``, mode 0600) holds no password, only hashes (argon2id, from argon2-cffi); it is
written atomically, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durable import atomic_replace, dumps
from .errors import CalibrationPolicyError
from .paths import data_root

USERS_FILE_NAME = "users.json"
MIN_PASSWORD = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UsersError(CalibrationPolicyError):
    """A users file that cannot be read, or a user or password that cannot be added."""


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise UsersError(
            "Sign-in with a users file needs argon2-cffi (in the [ui] extra): pip install 'calibration-policy[ui]'."
        ) from None
    return PasswordHasher()


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsersError(
            f"The user name {name!r:.40} is not usable; use 1–64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit."
        )
    return name


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]


class UsersFile:
    """The users of one data root (``users_file(data_dir)``), read on every sign-in so a change shows at once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise UsersError(f"The users file {self.path} cannot be read ({error}); nobody can sign in.") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise UsersError(f"The users file {self.path} holds no 'users' table; nobody can sign in.")
        return users

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # created private: hashes are still worth guarding
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        atomic_replace(self.path, dumps({"users": dict(sorted(users.items()))}))

    def exists(self) -> bool:
        return self.path.is_file()

    def users(self) -> list[User]:
        return [User(name, tuple(entry.get("roles", ()))) for name, entry in sorted(self._read().items())]

    def add(self, name: str, password: str, roles: Iterable[str] = ()) -> User:
        """Add ``name`` (or set a new password and roles for it)."""
        check_user_name(name)
        if len(password) < MIN_PASSWORD:
            raise UsersError(f"The password is {len(password)} characters; use at least {MIN_PASSWORD}.")
        users = self._read()
        roles = tuple(sorted(set(roles)))
        users[name] = {"password": _hasher().hash(password), "roles": list(roles)}
        self._write(users)
        return User(name, roles)

    def remove(self, name: str) -> None:
        users = self._read()
        if name not in users:
            raise UsersError(f"There is no user {name!r:.40} in {self.path}; known: {', '.join(users) or 'none'}.")
        del users[name]
        self._write(users)

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None (an unknown name costs the same time as a wrong password)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = _hasher()
        entry = self._read().get(name)
        stored = entry.get("password") if isinstance(entry, dict) else None
        try:
            if not isinstance(stored, str):
                hasher.verify(_dummy_hash(hasher), password)  # same cost: names cannot be probed by timing
                return None
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(name, tuple(entry.get("roles", ())) if isinstance(entry, dict) else ())

    def permissions(self, policy_source: Callable[[], Any]) -> Callable[[Any, str, str], bool]:
        """``permissions(user, action, domain)`` for the panel: the policy's table, with this file's roles added to
        each user's. Without a ``[permissions]`` table in the policy, everyone signed in may do everything."""
        from .permissions import PermissionsTable, allowed

        def check(user: Any, action: str, domain: str) -> bool:
            policy = policy_source()
            table: PermissionsTable | None = getattr(policy, "permissions", None)
            if table is None:
                return True
            name = str(user) if user is not None else ""
            extra = next((u.roles for u in self.users() if u.name == name), ())
            if extra:
                given = sorted({*table.users.get(name, ()), *extra})
                table = PermissionsTable.model_validate({**table.model_dump(), "users": {**table.users, name: given}})
                policy = policy.model_copy(update={"permissions": table})
            return allowed(action, actor=name, domain=domain, policy=policy)

        return check


_dummy: list[str] = []


def _dummy_hash(hasher: Any) -> str:
    """A hash of no one's password, made once: an unknown name is verified against it."""
    if not _dummy:
        _dummy.append(hasher.hash("not a password of anyone"))
    return _dummy[0]


def users_file(data_dir: str | os.PathLike[str] | None = None) -> UsersFile:
    """The users file of ``data_dir`` (default: the data root)."""
    return UsersFile((Path(data_dir) if data_dir is not None else data_root()) / USERS_FILE_NAME)
