"""Where notifications go: the policy file's ``[[notify]]`` endpoints, validated when the policy loads.

Each endpoint names a deliverer (``webhook``, ``slack`` or a plugin's, see the ``register_deliverers``
hook), its address, where its secret is kept (an environment variable or a file, never the policy
itself: a policy is shown in the panel and stored as versions) and which events it wants.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import PolicyError


def check_url(url: str, what: str) -> str:
    """``url`` if it is an absolute http(s) address with a host, else a ValueError saying what is wrong."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        raise ValueError(f"{what} {url!r:.100} is malformed ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r:.100} is not an http:// or https:// address with a host")
    return url.strip()


def _words(values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    return tuple(values)


class Endpoint(BaseModel):
    """One place notifications go. ``domains``/``targets``/``kinds``/``statuses`` filter (empty: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Shown in the delivery log.")
    deliverer: str = Field("webhook", description="webhook, slack or a plugin's deliverer.")
    url: str | None = Field(None, description="The address (for Slack, prefer url_env: its URL is its secret).")
    url_env: str | None = Field(None, description="An environment variable holding the address.")
    secret_env: str | None = Field(None, description="An environment variable holding the signing secret.")
    secret_file: str | None = Field(None, description="A file holding the signing secret.")
    domains: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    panel_url: str | None = Field(None, description="The panel's address, for links in the message.")
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    retry_hours: float = Field(24.0, ge=24.0, le=24 * 14, description="How long a failing delivery is retried.")

    _lists = field_validator("domains", "targets", "kinds", "statuses", mode="before")(
        classmethod(lambda cls, v: _words(v))
    )

    @field_validator("url", "panel_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url, "the address")

    @model_validator(mode="after")
    def _one_address(self) -> Endpoint:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"notify endpoint {self.name!r} needs exactly one of url or url_env")
        if self.secret_env and self.secret_file:
            raise ValueError(f"notify endpoint {self.name!r} takes secret_env or secret_file, not both")
        if self.deliverer == "webhook" and not (self.secret_env or self.secret_file):
            raise ValueError(
                f"webhook endpoint {self.name!r} signs its messages: give secret_env or secret_file "
                "(a Standard Webhooks secret such as whsec_…)"
            )
        return self

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether this endpoint's filters let ``event`` (an :meth:`Event.to_dict`) through."""
        return all(
            not allowed or event.get(key) in allowed
            for key, allowed in (
                ("domain", self.domains),
                ("target", self.targets),
                ("kind", self.kinds),
                ("status", self.statuses),
            )
        )

    def address(self) -> str:
        """The address to post to; from the environment when ``url_env`` says so (checked like ``url``)."""
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "", "").strip()
        if not value:
            raise PolicyError(f"The environment variable {self.url_env} (the address of {self.name}) is not set.")
        try:
            return check_url(value, f"the address in ${self.url_env}")
        except ValueError as error:  # the value may be a secret: name the variable, never print it
            raise PolicyError(f"The address in ${self.url_env} is not an http(s) URL with a host.") from error

    def secret(self) -> str | None:
        """The signing secret, read when a message is signed (None: the endpoint signs nothing)."""
        if self.secret_env:
            value = os.environ.get(self.secret_env, "").strip()
            if not value:
                raise PolicyError(f"The environment variable {self.secret_env} (the secret of {self.name}) is not set.")
            return value
        if self.secret_file:
            try:
                value = Path(self.secret_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as error:
                reason = os.strerror(error.errno) if error.errno else type(error).__name__
                raise PolicyError(
                    f"Cannot read the secret file of {self.name} ({self.secret_file}): {reason}."
                ) from None
            if not value:
                raise PolicyError(f"The secret file of {self.name} ({self.secret_file}) is empty.")
            return value
        return None

    def public(self) -> dict[str, Any]:
        """What may be shown (panel, JSON, logs): never a secret, nor an address read from the environment."""
        return {
            "name": self.name,
            "deliverer": self.deliverer,
            "url": self.url if self.deliverer != "slack" else None,
            "filters": {"domains": self.domains, "targets": self.targets, "kinds": self.kinds},
        }


def endpoints(value: Any) -> tuple[Endpoint, ...]:
    """``[[notify]]`` (a list of tables) or ``[notify.<name>]`` (a table of tables) as endpoints; a
    ``secret`` written into the policy itself is refused (a policy is shown and versioned)."""
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{"name": name, **(table if isinstance(table, dict) else {})} for name, table in value.items()]
    if not isinstance(value, list | tuple):
        raise ValueError("must be [[notify]] tables or [notify.<name>] tables")
    found: list[Endpoint] = []
    for table in value:
        if isinstance(table, Endpoint):
            found.append(table)
            continue
        if not isinstance(table, dict):
            raise ValueError("each [[notify]] entry must be a table")
        if "secret" in table:
            raise ValueError(
                f"notify endpoint {table.get('name', '?')!r} has its secret in the policy file; "
                "put it in an environment variable (secret_env) or a file (secret_file)"
            )
        found.append(Endpoint(**table))
    names = [e.name for e in found]
    if len(set(names)) != len(names):
        raise ValueError(
            f"notify endpoint names must differ; {sorted({n for n in names if names.count(n) > 1})} repeat"
        )
    return tuple(found)
