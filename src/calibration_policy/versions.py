"""Optimistic concurrency: what a page or caller saw of the live config, and the refusal of a change based on an older one."""

from __future__ import annotations

import hashlib

from .durable import dumps
from .errors import StaleChangeError
from .steps import _values_text
from .stores import govern, open_archive
from .target import Target


def live_version(target: Target) -> str:
    """What a page or caller saw of the live config, to send back with a change: a short fingerprint of
    it, led by the store's version counter where the store keeps one (a database row's ``version``
    column), so that values changed and changed back still count as changed."""
    target = govern(target)
    fingerprint = hashlib.sha256(dumps(target.load())).hexdigest()[:16]
    counter = getattr(target, "version", None)
    return f"{counter()}-{fingerprint}"[:64] if callable(counter) else fingerprint


def check_version(target: Target, expected: str | None, archive_dir=None) -> None:
    """Refuse a change based on a live config that someone changed since (``expected`` None: no check)."""
    if expected is None:
        return
    now = live_version(target)
    if now == expected:
        return
    last = open_archive(archive_dir, target.name).last_change()
    since = (
        f" The last change was {last.change_id} ({last.how} at {last.at:%Y-%m-%d %H:%M:%S} UTC: {last.reason})."
        if last is not None
        else ""
    )
    raise StaleChangeError(
        f"The live values of {target.name} changed since you looked (version {str(expected)[:40]} is now {now}); "
        f"they are now {_values_text(target.values(target.load()))}.{since} Nothing was changed; reload and decide again.",
    )
