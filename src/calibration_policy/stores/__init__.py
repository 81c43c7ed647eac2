"""Stores: where runs, suggestions, the live config's archive, change intents and locks are kept.

The pipeline asks the *active* store for each part and never knows which store it is. The file
store (the data folder, one JSON file per record) is the default; other stores are plugins
(``register_stores``), such as the built-in PostgreSQL store that lets several machines share one
history, one review queue and one live config. One setting chooses: ``$CALIBRATION_STORE``, else
``store = "postgresql://…"`` in the policy in force (once loaded), else the file store.

A store gives the same guarantees by its own means: the file store by file locks, atomic
renames and write-ahead intent files; a database by transactions, advisory locks and rows.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import StoreError
from ..redact import mask, remember_url

STORE_ENV = "CALIBRATION_STORE"
FILES = "files"
LOCK_TIMEOUT_SECONDS = 120.0


@runtime_checkable
class Store(Protocol):
    """What the pipeline needs from a store; each part has the interface of the file store's class.

    - ``runs(history_dir)``: :class:`calibration_policy.history.HistoryStore`'s methods
    - ``reviews(suggestions_dir)``: :class:`calibration_policy.review.ReviewStore`'s
    - ``archive(archive_dir, target_name)``: :class:`calibration_policy.archive.Archive`'s
    - ``lock(target, timeout)``: the target's exclusive lock (a context manager)
    - ``intents``: :mod:`calibration_policy.intents`' functions (begin, pending_names, abandoned, in_progress)
    - ``govern(target)``: the live config as this store keeps it (the file store: the host's own file)
    - ``targets(archive_dir)``: names of the targets with an archive
    - ``records(kind, folder)``: policy versions and proposals (:class:`calibration_policy.stores.records.FolderRecords`'s methods)
    - ``outbox(data_dir)``: events waiting for delivery and their delivery log (:class:`calibration_policy.outbox.FileOutbox`'s methods)
    - ``current_policy()``: the newest policy version's settings where the store is the policy's home, else None
    - ``describe()``: where the data is, for messages (never a password)
    """

    name: str

    def runs(self, history_dir: Any = None) -> Any: ...

    def reviews(self, suggestions_dir: Any = None) -> Any: ...

    def archive(self, archive_dir: Any, target_name: str) -> Any: ...

    def lock(self, target: Any, timeout: float) -> AbstractContextManager[Any]: ...

    @property
    def intents(self) -> Any: ...

    def govern(self, target: Any) -> Any: ...

    def targets(self, archive_dir: Any = None) -> list[str]: ...

    def records(self, kind: str, folder: Any = None) -> Any: ...

    def outbox(self, data_dir: Any = None) -> Any: ...

    def current_policy(self) -> dict[str, Any] | None: ...

    def describe(self) -> str: ...


_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_REF, FILE_REF = "env:", "file:"


def scheme_of(url: str) -> str:
    match = _URL.match(url.strip()) if isinstance(url, str) else None
    if match is None:
        raise StoreError(
            f"The store setting {mask(str(url))!r:.80} is not a store URL; write it like "
            "postgresql://user:password@host:5432/dbname, or name where the URL is kept: "
            '"env:VARIABLE" or "file:/path/to/file" (or leave it out for the data folder).'
        )
    scheme = match["scheme"].lower().split("+")[0]
    return "postgresql" if scheme == "postgres" else scheme


def check_store_setting(setting: str) -> str:
    """``setting`` if it is a store URL or a well-formed ``env:NAME`` / ``file:PATH`` reference (what a
    policy may hold): a malformed one fails with the policy, not at the first write."""
    text = setting.strip()
    if text.startswith(ENV_REF):
        if not _ENV_NAME.match(text[len(ENV_REF) :]):
            raise StoreError(
                f"The store setting {text!r:.80} names no environment variable; write it like env:CALIBRATION_STORE_URL."
            )
    elif text.startswith(FILE_REF):
        if not text[len(FILE_REF) :].strip():
            raise StoreError("The store setting 'file:' names no file; write it like file:/run/secrets/calib_store.")
    else:
        scheme_of(text)
    return setting


def resolve(setting: str | None) -> str | None:
    """The store URL a setting stands for: ``env:NAME`` reads that environment variable, ``file:PATH`` that
    file (so the policy need not hold a password); anything else is the URL itself. The one place where
    a reference becomes a URL; the URL's password is remembered so every message masks it."""
    if setting is None or not setting.strip():
        return None
    text = setting.strip()
    if text.startswith(ENV_REF):
        name = text[len(ENV_REF) :]
        value = os.environ.get(name, "").strip()
        if not value:
            raise StoreError(
                f"The store setting names the environment variable {name}, which is not set (or empty) in this "
                "process; set it to the store URL."
            )
    elif text.startswith(FILE_REF):
        path = Path(text[len(FILE_REF) :].strip()).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise StoreError(
                f"The store setting names the file {path}, which cannot be read ({error.strerror or error}); "
                "put the store URL in it, readable by this user."
            ) from None
        if not value:
            raise StoreError(f"The store setting names the file {path}, which is empty; put the store URL in it.")
    else:
        return text
    remember_url(value)
    return value


_followed: str | None = None


def follow(policy: Any) -> None:
    """A policy that names a store (``store = "postgresql://…"``, ``"env:NAME"`` or ``"file:PATH"``) makes it
    this process's store; the environment's ``$CALIBRATION_STORE`` still wins. Loading the policy in force
    calls this."""
    global _followed
    setting = getattr(policy, "store", None)
    if setting:
        _followed = setting


def store_setting() -> str | None:
    """The store URL in force: ``$CALIBRATION_STORE``, else the one the loaded policy names, else None (files);
    an ``env:``/``file:`` reference in either is followed to the URL it names."""
    return resolve(os.environ.get(STORE_ENV, "").strip() or _followed)


_open: dict[tuple[str, int], Store] = {}
_open_lock = threading.Lock()


def open_store_url(url: str | None) -> Store:
    """The store for ``url`` (None or ``files``: the data folder in force), opened once per process."""
    from .files import FileStore

    if url is None or url.strip().lower() in (FILES, "file", ""):
        return FileStore()
    key = (url.strip(), os.getpid())  # a forked child opens its own connections
    with _open_lock:
        store = _open.get(key)
    if store is not None:
        return store
    from ..plugins import collect

    remember_url(url)
    scheme = scheme_of(url)
    try:
        kind = collect("stores").get(scheme)
    except ValueError as error:
        raise StoreError(f"No installed store serves {scheme}:// URLs ({error})") from None
    store = kind.open(url.strip())
    with _open_lock:
        return _open.setdefault(key, store)


def store_at(place: str) -> Store:
    """A store URL, or a data folder's path (the file store of that folder): what ``migrate`` takes."""
    from .files import FileStore

    if place.strip().startswith((ENV_REF, FILE_REF)):
        place = resolve(place) or place
    return open_store_url(place) if "://" in place else FileStore(place)


def active_store() -> Store:
    """The store every part of the pipeline uses now (see the module's doc for the setting)."""
    return open_store_url(store_setting())


# -- the active store's parts: what the rest of the library calls ---------------------------------------


def open_store(history_dir: Any = None) -> Any:
    """The calibration runs (of ``history_dir`` on the file store), reused within a process."""
    return active_store().runs(history_dir)


def open_reviews(suggestions_dir: Any = None) -> Any:
    """The suggestions waiting for (or done with) a person's review."""
    return active_store().reviews(suggestions_dir)


def open_archive(archive_dir: Any, target_name: str) -> Any:
    """The archive of one live config: every change, with what it replaced."""
    return active_store().archive(archive_dir, target_name)


def locked(target: Any, timeout: float = LOCK_TIMEOUT_SECONDS) -> AbstractContextManager[Any]:
    """``with locked(target):`` — the target's exclusive lock, with a plain message on time-out."""
    return active_store().lock(target, timeout)


def open_outbox(data_dir: Any = None) -> Any:
    """Events waiting for delivery, with their delivery log (of ``data_dir`` on the file store; None:
    the folder the runs' folder is in)."""
    return active_store().outbox(data_dir)


def intents() -> Any:
    """Write-ahead intents of multi-step changes (see :mod:`calibration_policy.intents`)."""
    return active_store().intents


def govern(target: Any) -> Any:
    """The live config as the active store keeps it (the host's own target on the file store)."""
    return active_store().govern(target)


def close_all() -> None:
    """Close every open store's connections (tests, a host shutting down)."""
    with _open_lock:
        stores = list(_open.values())
        _open.clear()
    for store in stores:
        close = getattr(store, "close", None)
        if close is not None:
            close()
