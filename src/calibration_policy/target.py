"""Targets: where applied values go live (the host's config file), behind a small protocol.

A target hands out whole *snapshots* (the parsed config) so the archive can keep exactly what
was replaced and a rollback can put it back byte for byte; it never writes unless asked to.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .durable import atomic_replace, dumps
from .errors import TargetError
from .naming import check_record_id

Snapshot = dict[str, Any]


@runtime_checkable
class Target(Protocol):
    """What the update flow needs from a live config. A host implements it for its own file."""

    name: str  # file-name-safe; names the archive folder
    lock_path: Path  # a separate lock file: a lock on the config itself dies when it is replaced

    def load(self) -> Snapshot: ...

    def values(self, snapshot: Snapshot) -> dict[str, float]: ...

    def with_values(self, snapshot: Snapshot, values: Mapping[str, float]) -> Snapshot: ...

    def save(self, snapshot: Snapshot) -> None: ...


def _plain_values(snapshot: Snapshot) -> dict[str, float]:
    """``{scope: number}`` exactly: a string, bool or null where a number belongs is an error, not coerced."""
    found = {}
    for scope, value in snapshot.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{scope} is {value!r:.40}, not a number")
        found[str(scope)] = float(value)
    return found


class JsonFileTarget:
    """A JSON config file. By default it holds ``{scope: value}``; pass ``values`` and
    ``with_values`` functions to govern a nested format such as a vol-surface config."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        values: Callable[[Snapshot], dict[str, float]] | None = None,
        with_values: Callable[[Snapshot, Mapping[str, float]], Snapshot] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = check_record_id(name or self.path.stem, "target name")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._values = values or _plain_values
        self._with_values = with_values or (lambda snapshot, new: {**snapshot, **new})

    def load(self) -> Snapshot:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise TargetError(
                f"The live config {self.path} does not exist; create it or point to the right file."
            ) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise TargetError(
                f"The live config {self.path} is not valid JSON ({error}); restore it from the archive."
            ) from None
        except OSError as error:
            raise TargetError(f"The live config {self.path} cannot be read: {error.strerror}.") from None
        if not isinstance(data, dict):
            raise TargetError(f"The live config {self.path} does not hold a JSON object.")
        return data

    def values(self, snapshot: Snapshot) -> dict[str, float]:
        try:
            found = self._values(snapshot)
        except (KeyError, TypeError, ValueError) as error:
            raise TargetError(f"The live config {self.path} is missing a value or has a wrong one ({error}).") from None
        for scope, value in found.items():
            if not math.isfinite(value):  # json.loads accepts NaN and Infinity
                raise TargetError(
                    f"The live config {self.path} has {scope} = {value}, not a finite number; restore it from the archive."
                )
        return found

    def with_values(self, snapshot: Snapshot, values: Mapping[str, float]) -> Snapshot:
        return self._with_values(snapshot, values)

    def save(self, snapshot: Snapshot) -> None:
        try:
            atomic_replace(self.path, dumps(snapshot))
        except ValueError as error:
            raise TargetError(str(error)) from None
