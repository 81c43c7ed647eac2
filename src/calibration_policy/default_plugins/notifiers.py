"""Built-in deliverers: a signed webhook (Standard Webhooks) and a Slack-compatible incoming webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from calibration_policy.delivery import Sent
from calibration_policy.hookspecs import hookimpl
from calibration_policy.specs import Deliverer

STATUS_WORDS = {
    "applied": "went live",
    "waiting": "waiting for approval",
    "not_applied": "not applied",
    "rejected": "rejected",
    "rolled_back": "rolled back",
    "recorded": "recorded",
}
SHOWN_SCOPES = 4


def post(client: Any, endpoint: Any, body: bytes, headers: dict[str, str]) -> Sent:
    """POST ``body``; any 2xx is delivered, a redirect or another answer is a failure said in a sentence."""
    import httpx

    try:
        response = client.post(
            endpoint.address(),
            content=body,
            headers={"content-type": "application/json", **headers},
            timeout=endpoint.timeout_seconds,
        )
    except httpx.TimeoutException:
        return Sent(None, f"{endpoint.name} did not answer within {endpoint.timeout_seconds:g} s.")
    except httpx.HTTPError as error:  # the address is in the endpoint's config; the error names the endpoint only
        return Sent(None, f"{endpoint.name} could not be reached ({type(error).__name__}).")
    code = response.status_code
    if 200 <= code < 300:
        return Sent(code)
    if 300 <= code < 400:
        return Sent(
            code,
            f"{endpoint.name} answered {code}, a redirect, which is not followed; set the endpoint's "
            "address to where it now lives.",
        )
    return Sent(code, f"{endpoint.name} answered {code} {response.reason_phrase}.".replace(" .", "."))


def send_webhook(endpoint: Any, event: dict[str, Any], message_id: str, client: Any) -> Sent:
    """The event as JSON, signed: ``webhook-id`` (the event's id), ``webhook-timestamp``, ``webhook-signature``."""
    from standardwebhooks import Webhook

    secret = endpoint.secret()
    body = json.dumps({"type": f"calibration.{event.get('kind')}", "data": event}, sort_keys=True).encode()
    moment = datetime.now(UTC)
    headers = {"webhook-id": message_id, "webhook-timestamp": str(int(moment.timestamp()))}
    if secret is not None:
        try:
            headers["webhook-signature"] = Webhook(secret).sign(message_id, moment, body)
        except Exception as error:  # never echo the secret: say what kind of problem it has
            return Sent(
                None,
                f"The secret of {endpoint.name} is not a usable signing key ({type(error).__name__}).",
                retry=False,
            )
    return post(client, endpoint, body, headers)


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def slack_text(event: dict[str, Any], panel_url: str | None = None) -> str:
    """One line a person reads: "QQQ IV multipliers waiting for approval: monthly 1.162 → 1.173 …" and a link."""
    from calibration_policy.plugins import get_domain

    try:
        what = get_domain(event.get("domain") or "").parameter_label_plural
    except ValueError:
        what = event.get("domain") or "config"
    before, after = event.get("before") or {}, event.get("after") or {}
    changed = [k for k in after if before.get(k) != after.get(k)] or list(after)
    moves = [f"{k} {_value(before[k]) if k in before else '–'} → {_value(after[k])}" for k in changed[:SHOWN_SCOPES]]
    subject = " ".join(str(p) for p in (event.get("underlying") or event.get("target"), what) if p)
    text = f"{subject} {STATUS_WORDS.get(event.get('status') or '', event.get('status'))}"
    text += (": " + ", ".join(moves) + (" …" if len(changed) > SHOWN_SCOPES else "")) if moves else ""
    text += f" ({event.get('kind')} by {event.get('actor') or 'the policy'} via {event.get('via')})"
    if panel_url:
        text += f" <{panel_url}|open in the panel>"
    return text


def send_slack(endpoint: Any, event: dict[str, Any], message_id: str, client: Any) -> Sent:
    """Slack's incoming-webhook body (``{"text": …}``); its URL is its secret (give it with ``url_env``)."""
    body = json.dumps({"text": slack_text(event, endpoint.panel_url)}).encode()
    return post(client, endpoint, body, {"webhook-id": message_id})


@hookimpl
def register_deliverers(register):
    register(
        Deliverer(
            "webhook",
            send_webhook,
            label="Signed webhook",
            description="The event as JSON, signed per Standard Webhooks (webhook-id, -timestamp, -signature).",
        )
    )
    register(
        Deliverer(
            "slack",
            send_slack,
            label="Slack incoming webhook",
            description="One line of text per event with a link to the panel (Slack, Mattermost, Teams' Slack mode).",
        )
    )
