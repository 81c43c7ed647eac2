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
from typing import Any, Protocol, runtime_checkable

from ..errors import StoreError

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


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to print and to log."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", str(url))


def scheme_of(url: str) -> str:
    match = _URL.match(url.strip()) if isinstance(url, str) else None
    if match is None:
        raise StoreError(
            f"The store setting {masked(str(url))!r:.80} is not a store URL; write it like "
            "postgresql://user:password@host:5432/dbname (or leave it out for the data folder)."
        )
    scheme = match["scheme"].lower().split("+")[0]
    return "postgresql" if scheme == "postgres" else scheme


_followed: str | None = None


def follow(policy: Any) -> None:
    """A policy that names a store (``store = "postgresql://…"``) makes it this process's store; the
    environment's ``$CALIBRATION_STORE`` still wins. Loading the policy in force calls this."""
    global _followed
    url = getattr(policy, "store", None)
    if url:
        _followed = url


def store_setting() -> str | None:
    """The store URL in force: ``$CALIBRATION_STORE``, else the one the loaded policy names, else None (files)."""
    return os.environ.get(STORE_ENV, "").strip() or _followed


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
