"""Delivery: the outbox's events to the policy's ``[[notify]]`` endpoints, at least once, for a day or more.

One worker at a time per store (:meth:`FileOutbox.worker`; PostgreSQL: an advisory lock and
``FOR UPDATE SKIP LOCKED``) takes each deliverable record and each endpoint that wants it and is due,
asks the endpoint's deliverer to send it (the message id is the event's id, the same on every
retry), and stores the attempt in the record's delivery log before the next one: a worker killed
after a receiver answered sends that message again, which the receiver recognises by its id.
A failure is retried with exponential backoff and jitter until ``retry_hours`` (24 by default)
have passed since the first attempt; then the delivery is marked failed (``outbox redeliver`` resets it).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .archive import now_utc
from .notify import Endpoint
from .outbox import deliveries_of
from .stores import intents, open_outbox

FIRST_RETRY_SECONDS = 30.0
LONGEST_WAIT_SECONDS = 3600.0
LOG_LENGTH = 50  # attempts kept per endpoint: the first and the latest tell the story


@dataclass(frozen=True)
class Sent:
    """What one attempt came to: ``error`` None means delivered; ``retry`` False gives up at once."""

    code: int | None
    error: str | None = None
    retry: bool = True


@dataclass
class PassReport:
    """One pass of the worker, counted per (event, endpoint)."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        return (
            f"Delivered {self.sent}, {self.retrying} to retry later, {self.failed} given up, "
            f"{self.held} held by a change under way or waiting to be settled."
        )


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failures: doubling from 30 s up to an hour,
    each scaled by a random 0.5-1.0 so that many failed deliveries do not come back at once."""
    wait = min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), LONGEST_WAIT_SECONDS)
    return wait * (0.5 + 0.5 * (rng or random).random())


def _parse(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def due(delivery: dict[str, Any] | None, now: datetime) -> bool:
    if delivery is None:
        return True
    if delivery.get("state") in ("sent", "failed"):
        return False
    next_at = _parse(delivery.get("next_at"))
    return next_at is None or next_at <= now


def note_attempt(delivery: dict[str, Any] | None, sent: Sent, endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    """The delivery after one more attempt: its state, the next attempt's time, the log entry."""
    delivery = dict(delivery or {"state": "retrying", "attempts": 0, "first_at": now.isoformat(), "log": []})
    delivery["attempts"] = attempts = int(delivery.get("attempts", 0)) + 1
    first = _parse(delivery.get("first_at")) or now
    next_at = None
    if sent.error is None:
        state = "sent"
    elif not sent.retry or now - first >= timedelta(hours=endpoint.retry_hours):
        state = "failed"
    else:
        state, next_at = "retrying", now + timedelta(seconds=backoff(attempts))
    delivery.update(state=state, next_at=next_at.isoformat() if next_at else None, last_at=now.isoformat())
    entry = {"at": now.isoformat(), "code": sent.code, "error": sent.error, "next_at": delivery["next_at"]}
    delivery["log"] = [*delivery.get("log", []), entry][-LOG_LENGTH:]
    return delivery


def http_client() -> Any:
    """The worker's HTTP client: keeps connections open, follows no redirect (a moved endpoint is a
    configuration to fix, not an address to trust blindly)."""
    import httpx

    return httpx.Client(follow_redirects=False, headers={"user-agent": "calibration-policy-notify"})


def deliver_pass(
    outbox: Any, endpoints: Iterable[Endpoint], *, client: Any = None, now: datetime | None = None
) -> PassReport:
    """One pass over the outbox (call it from cron, or :func:`deliver_loop`): every due delivery is tried once.

    Records are independent, so a store that can (``outbox.parallel``, the file store's 8) delivers several
    at once; each record's attempts stay in order, each stored before the next."""
    from concurrent.futures import ThreadPoolExecutor

    from .plugins import collect

    endpoints = tuple(endpoints)
    report = PassReport()
    if not endpoints:
        return report
    deliverers = collect("deliverers")
    own_client = client is None
    client = client or http_client()
    tally = threading.Lock()

    def one(job: tuple[dict[str, Any], list[Endpoint]]) -> None:
        record, wanted = job
        for endpoint, sent, state in _deliver_record(outbox, record, wanted, deliverers, client, now):
            with tally:
                report.sent += state == "sent"
                report.retrying += state == "retrying"
                report.failed += state == "failed"
                if sent is not None and sent.error:
                    report.errors.append(f"{endpoint.name}, event {record['event']['event_id']}: {sent.error}")

    try:
        with outbox.worker():
            jobs = _deliverable(outbox.claim(), endpoints, report)
            workers = getattr(outbox, "parallel", 1)
            if workers > 1:
                with ThreadPoolExecutor(workers, thread_name_prefix="outbox") as pool:
                    list(pool.map(one, jobs))
            else:  # a claimed row is locked in its own transaction: deliver it before claiming the next
                for job in jobs:
                    one(job)
    finally:
        if own_client:
            client.close()
    return report


def _deliverable(records: Iterable[dict[str, Any]], endpoints: tuple[Endpoint, ...], report: PassReport) -> Any:
    """The records some endpoint wants whose change is done (a held one is counted and left for later)."""
    pending: dict[Any, list[str]] = {}
    for record in records:
        wanted = [e for e in endpoints if e.wants(record["event"])]
        if not wanted:
            continue
        if is_held(record, pending):
            report.held += len(wanted)
            continue
        yield record, wanted


def _deliver_record(
    outbox: Any, record: dict[str, Any], wanted: list[Endpoint], deliverers: Any, client: Any, now: datetime | None
) -> Any:
    """Each endpoint's due attempt at one record, stored before the next: (endpoint, what was sent, state)."""
    deliveries = record.setdefault("deliveries", {})
    for endpoint in wanted:
        moment = now or now_utc()
        if not due(deliveries.get(endpoint.name), moment):
            if deliveries[endpoint.name]["state"] == "retrying":
                yield endpoint, None, "retrying"  # waits for its next attempt
            continue
        sent = attempt(deliverers.get(endpoint.deliverer), endpoint, record["event"], client)
        deliveries[endpoint.name] = note_attempt(deliveries.get(endpoint.name), sent, endpoint, moment)
        outbox.save(record)  # before the next attempt: the log survives a kill
        yield endpoint, sent, deliveries[endpoint.name]["state"]


def attempt(deliverer: Any, endpoint: Endpoint, event: dict[str, Any], client: Any) -> Sent:
    """One attempt; a deliverer that raises is a failed attempt with its sentence (never the secret)."""
    try:
        return deliverer.send(endpoint, event, event["event_id"], client)
    except ValueError as error:  # our own sentences: a missing secret, an unset variable
        return Sent(None, str(error))
    except Exception as error:  # a plugin's bug must not stop the other deliveries
        return Sent(None, f"the {endpoint.deliverer} deliverer failed ({type(error).__name__})")


def deliver_loop(outbox: Any, endpoints_of: Any, every_seconds: float = 5.0, passes: int | None = None) -> None:
    """Keep delivering: a pass, then a pause; ``endpoints_of()`` is read each pass (a policy change applies)."""
    done = 0
    while passes is None or done < passes:
        deliver_pass(outbox, endpoints_of())
        done += 1
        time.sleep(every_seconds)


def redeliver(outbox: Any, event_id: str) -> dict[str, Any]:
    """Forget what became of ``event_id``'s deliveries, so the next pass sends it again (same message id)."""
    from .errors import CalibrationPolicyError

    record = outbox.get(event_id)
    if record is None:
        raise CalibrationPolicyError(
            f"The outbox has no event {event_id!r}; `calibration-policy outbox list` shows them."
        )
    for delivery in (record.get("deliveries") or {}).values():
        delivery.update(state="retrying", next_at=None, first_at=now_utc().isoformat())
    outbox.save(record)
    return record


def is_held(record: dict[str, Any], pending: dict[tuple[Any, Any], list[str]] | None = None) -> bool:
    """Whether the change that wrote ``record`` is still under way or waits to be settled."""
    held = record.get("intent")
    if not held:
        return False
    key = (held.get("archive_dir"), held.get("target"))
    if pending is None or key not in pending:
        names = intents().pending_names(held.get("archive_dir"), held.get("target"))
        if pending is None:
            return f"{held['id']}.json" in names
        pending[key] = names
    return f"{held['id']}.json" in pending[key]


def deliveries_for(change_id: str, data_dir: Any = None) -> list[dict[str, Any]]:
    """What became of the notifications of one change (or run or suggestion): per event and endpoint,
    ``state`` (sent, failed, retrying; waiting or held before any attempt), attempts, the last response
    code and error sentence, the next attempt time. Never a secret or an address."""
    return deliveries_by_change([change_id], data_dir)[change_id]


def deliveries_by_change(change_ids: Iterable[str], data_dir: Any = None) -> dict[str, list[dict[str, Any]]]:
    """:func:`deliveries_for` of several changes in one reading of the outbox (the panel's timeline)."""
    found: dict[str, list[dict[str, Any]]] = {change_id: [] for change_id in change_ids}
    pending: dict[Any, list[str]] = {}
    for record in open_outbox(data_dir).records():
        event = record["event"]
        for key in {event.get("change_id"), event.get("suggestion_id"), event.get("run_id")} & set(found):
            found[key].extend(deliveries_of(record, is_held(record, pending)))
    return found
