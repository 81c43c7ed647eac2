"""``calibration-policy outbox run | list | redeliver``: deliver the outbox, read its log, send again.

Imported only when the CLI asks for its commands (:mod:`.outbox_commands`), so the plugin loads without click."""

from __future__ import annotations

import time
from typing import Any

import click

from calibration_policy.cli import emit_json, json_option, load_policy, print_table


def _endpoints(policy_file: str | None) -> Any:
    return load_policy(policy_file, None).notify


def _outbox() -> Any:
    from calibration_policy.stores import open_outbox

    return open_outbox()


@click.group()
def outbox() -> None:
    """Notifications of every decision and change: deliver them, list them, send one again."""


policy_option = click.option(
    "--policy",
    "policy_file",
    metavar="FILE",
    help="Policy TOML file with the [[notify]] endpoints (default: in force).",
)


@outbox.command("run")
@policy_option
@click.option("--loop", is_flag=True, help="Keep delivering (a pass every --every seconds) instead of one pass.")
@click.option(
    "--every", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True, help="Seconds between passes."
)
@json_option
def run(policy_file: str | None, loop: bool, every: float, as_json: bool) -> None:
    """One delivery pass (for cron), or --loop. Every due delivery is tried once; a failure is retried
    later with backoff for at least 24 hours. A second worker on the same store is refused."""
    from calibration_policy.delivery import deliver_pass
    from calibration_policy.policy_events import settle_policy_events

    box = _outbox()
    while True:
        endpoints = _endpoints(policy_file)
        if not endpoints:
            raise click.UsageError("The policy in force has no [[notify]] endpoints; nothing to deliver to.")
        settle_policy_events()  # a policy change whose process died before its event: announced now
        report = deliver_pass(box, endpoints)
        if as_json:
            emit_json({k: v for k, v in vars(report).items()})
        else:
            click.echo(report.sentence())
            for line in report.errors:
                click.echo(f"  {line}")
        if not loop:
            return
        time.sleep(every)


@outbox.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Newest events shown.")
@json_option
def list_command(limit: int, as_json: bool) -> None:
    """The newest events and what became of each delivery (sent, retrying, failed; held by a change under way)."""
    from calibration_policy.delivery import is_held
    from calibration_policy.outbox import deliveries_of

    records = list(_outbox().records())[-limit:]
    pending: dict[Any, list[str]] = {}
    rows = []
    for record in records:
        event = record["event"]
        held = is_held(record, pending)
        for row in deliveries_of(record, held):
            rows.append({**row, "at": event.get("at"), "domain": event.get("domain"), "target": event.get("target")})
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("The outbox is empty.")
        return
    print_table(
        ["Event", "At (UTC)", "Kind", "Status", "Target", "Endpoint", "Delivery", "Tries", "Code", "Next try / error"],
        [
            [
                r["event_id"],
                (r["at"] or "")[:19],
                r["kind"] or "",
                r["status"] or "",
                r["target"] or "",
                r["endpoint"] or "–",
                r["state"],
                str(r["attempts"]),
                str(r["code"] or "–"),
                (r["next_at"] or "")[:19] + (" " if r["next_at"] and r["error"] else "") + (r["error"] or ""),
            ]
            for r in rows
        ],
    )


@outbox.command("redeliver")
@click.argument("event_id")
def redeliver_command(event_id: str) -> None:
    """Send EVENT_ID again on the next pass (same webhook-id, so a receiver sees it is the same event)."""
    from calibration_policy.delivery import redeliver

    record = redeliver(_outbox(), event_id)
    names = sorted(record.get("deliveries") or {}) or ["every endpoint that wants it"]
    click.echo(f"Event {event_id} will be sent again to {', '.join(names)} on the next `outbox run`.")
