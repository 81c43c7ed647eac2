"""Copy everything from one store to another (files ↔ PostgreSQL): idempotent, resumable, verified.

Every record keeps its id, and a record already at the destination is left alone, so a migration
killed halfway is finished by running it again. At the end both stores are read once more and
compared: the same number of records of each kind and the same content hash, or an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError
from ..redact import mask
from . import Store

PAGE = 1000


@dataclass
class Tally:
    """What one kind of record did in a migration, and its fingerprint on each side."""

    copied: int = 0
    present: int = 0
    source_hash: str = ""
    destination_hash: str = ""
    source_count: int = 0
    destination_count: int = 0

    @property
    def matches(self) -> bool:
        return self.source_count == self.destination_count and self.source_hash == self.destination_hash


@dataclass
class Migration:
    tallies: dict[str, Tally] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return all(t.matches for t in self.tallies.values())

    def summary(self) -> str:
        parts = [
            f"{kind}: {t.copied:,} copied, {t.present:,} already there, {t.destination_count:,} in all"
            for kind, t in self.tallies.items()
        ]
        verdict = (
            "Verified: the same records, with the same content, on both sides."
            if self.verified
            else "NOT verified: the two stores differ (see the counts); run the migration again."
        )
        return "; ".join(parts) + ". " + verdict


def _runs(store: Store) -> Iterator[Any]:
    from ..history import cursor_of

    runs = store.runs()
    for underlying in runs.underlyings():
        after = None
        while True:
            page = runs.oldest(underlying, PAGE, after=after)
            yield from page
            if len(page) < PAGE:
                break
            after = cursor_of(page[-1])


def _suggestions(store: Store) -> Iterator[Any]:
    yield from store.reviews().all()


def _changes(store: Store) -> Iterator[Any]:
    for target in store.targets():
        yield from store.archive(None, target).entries(include_all=True)


@dataclass(frozen=True)
class PolicyRecord:
    """A policy version or proposal on its way between stores."""

    kind: str
    record_id: str
    data: dict[str, Any]

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return self.data


def _policy_records(kind: str) -> Callable[[Store], Iterator[Any]]:
    def read(store: Store) -> Iterator[Any]:
        for record_id, data in store.records(kind).list():
            yield PolicyRecord(kind, record_id, data)

    return read


@dataclass(frozen=True)
class OutboxRecord:
    """An event and its delivery log on its way between stores: sent stays sent, waiting keeps waiting."""

    event_id: str
    data: dict[str, Any]

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return self.data


def _events(store: Store) -> Iterator[Any]:
    for record in store.outbox().records():
        yield OutboxRecord(str(record["event"]["event_id"]), record)


def _put_event(store: Store, record: OutboxRecord) -> bool:
    outbox = store.outbox()
    if outbox.get(record.event_id) is not None:
        return False
    outbox.add(record.data)
    return True


KINDS: dict[str, tuple[Callable[[Store], Iterator[Any]], str, Callable[[Store, Any], bool]]] = {
    "runs": (_runs, "run_id", lambda store, run: store.runs().put(run)),
    "suggestions": (_suggestions, "suggestion_id", lambda store, item: store.reviews().put(item)),
    "archived changes": (_changes, "change_id", lambda store, entry: store.archive(None, entry.target).put(entry)),
    "policy versions": (
        _policy_records("policy_versions"),
        "record_id",
        lambda store, record: store.records(record.kind).put(record.record_id, record.data),
    ),
    "policy proposals": (
        _policy_records("policy_proposals"),
        "record_id",
        lambda store, record: store.records(record.kind).put(record.record_id, record.data),
    ),
    "events": (_events, "event_id", _put_event),
}


def _digest(record: Any, key: str) -> str:
    """A hash of one record's id and content."""
    return hashlib.sha256(
        (getattr(record, key) + "\0" + json.dumps(record.model_dump(mode="json"), sort_keys=True)).encode()
    ).hexdigest()


def _fingerprint(digests: list[str]) -> tuple[int, str]:
    """How many records, and a hash of their sorted digests (independent of the order read)."""
    return len(digests), hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()[:16]


def count(store: Store) -> int:
    """How many records a migration from ``store`` copies (for its progress bar)."""
    runs = store.runs()
    return (
        sum(runs.count(u) for u in runs.underlyings())
        + len(store.reviews().all())
        + sum(len(store.archive(None, t).entries(include_all=True)) for t in store.targets())
        + sum(len(store.records(kind).list()) for kind in ("policy_versions", "policy_proposals"))
        + sum(1 for _ in store.outbox().records())
    )


def migrate(source: Store, destination: Store, advance: Callable[[int], None] = lambda _: None) -> Migration:
    """Copy every run, suggestion, archived change, policy version or proposal and outbox event (with its
    delivery log: nothing sent twice, nothing waiting dropped) of ``source`` into ``destination``, then verify."""
    if source.describe() == destination.describe():
        raise StoreError(
            f"The source and the destination are the same store ({mask(source.describe())}); nothing was copied."
        )
    result = Migration()
    for kind, (read, key, put) in KINDS.items():
        tally = result.tallies[kind] = Tally()
        copied = []  # the source's digests, taken as it is read for the copy (one read of the source)
        for record in read(source):
            copied.append(_digest(record, key))
            if put(destination, record):
                tally.copied += 1
            else:
                tally.present += 1
            advance(1)
        tally.source_count, tally.source_hash = _fingerprint(copied)
        tally.destination_count, tally.destination_hash = _fingerprint([_digest(r, key) for r in read(destination)])
    return result
