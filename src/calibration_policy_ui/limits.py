"""Request bodies are bounded before anything parses them.

Every route of the panel passes through :func:`admission` first (the panel's route class calls it, so
the limits travel with ``include_router`` and a host adds nothing): a body larger than its route's limit
is refused with a 413 from its ``Content-Length`` alone, or as soon as the stream passes the limit; a
JSON body nested deeper than :data:`calibration_policy.limits.MAX_JSON_DEPTH` is a 400. When the host has
already said who is signed in (a middleware or a proxy set the user), the permission check runs here too,
before a byte of the body is read; with a host whose sign-in is a route dependency, it runs right after
this bounded read, before the body is parsed into the route's model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request

from calibration_policy.humanize import fmt_count
from calibration_policy.limits import check_depth

from .errors import PanelError

KIB, MIB = 1024, 1024 * 1024
DEFAULT_BODY_LIMIT = 64 * KIB  # a form or a JSON change: a few hundred bytes in practice
UPLOAD_BODY_LIMIT = 20 * MIB  # a trades upload: about 150,000 trades
UPLOAD_ROUTES = ("api_weights_analyze",)
BODY_LIMIT_ENV = "CALIBRATION_PANEL_BODY_LIMIT"
UPLOAD_LIMIT_ENV = "CALIBRATION_PANEL_UPLOAD_LIMIT"
ROUTE_PREFIX = "calibration_policy_ui."
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|k|mb|mib|m|gb|gib|g)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB, "g": 1024 * MIB}
_UNITS |= {"gb": 1024 * MIB, "gib": 1024 * MIB}


def parse_size(text: str | int, what: str = "The body limit") -> int:
    """``64KiB``, ``20MB``, ``1048576`` → bytes (a KB is 1,024 bytes here, as people mean it for uploads)."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ValueError(f"{what} {text!r:.40} is not a size; write it like 64KiB, 20MiB or 65536.")
        size = int(float(match[1]) * _UNITS[(match[2] or "b").lower()])
    if size < 1:
        raise ValueError(f"{what} must be at least 1 byte, not {size}.")
    return size


def fmt_size(size: int) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", KIB)):
        if size >= scale and size % (scale // 4) == 0:
            return f"{size / scale:g} {unit}"
    return f"{fmt_count(size)} bytes"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route accepts: ``default`` for forms and JSON changes, ``routes`` by route name
    (without the ``calibration_policy_ui.`` prefix) for the uploads."""

    default: int = DEFAULT_BODY_LIMIT
    routes: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(UPLOAD_ROUTES, UPLOAD_BODY_LIMIT))

    @classmethod
    def of(cls, value: BodyLimits | int | str | Mapping[str, int | str] | None) -> BodyLimits:
        """``create_router(body_limits=…)``: None (the environment's, else the defaults), one size for the forms,
        or ``{"default": "64KiB", "api_weights_analyze": "50MiB"}``."""
        if isinstance(value, BodyLimits):
            return value
        base = cls.from_env()
        if value is None:
            return base
        if isinstance(value, (int, str)):
            return cls(parse_size(value), base.routes)
        sizes = {
            name.removeprefix(ROUTE_PREFIX): parse_size(size, f"The body limit of {name}")
            for name, size in value.items()
        }
        return cls(sizes.pop("default", base.default), {**base.routes, **sizes})

    @classmethod
    def from_env(cls) -> BodyLimits:
        """``$CALIBRATION_PANEL_BODY_LIMIT`` and ``$CALIBRATION_PANEL_UPLOAD_LIMIT`` (``serve``'s options set them)."""
        default = os.environ.get(BODY_LIMIT_ENV, "").strip()
        upload = os.environ.get(UPLOAD_LIMIT_ENV, "").strip()
        return cls(
            parse_size(default, BODY_LIMIT_ENV) if default else DEFAULT_BODY_LIMIT,
            dict.fromkeys(UPLOAD_ROUTES, parse_size(upload, UPLOAD_LIMIT_ENV) if upload else UPLOAD_BODY_LIMIT),
        )

    def for_route(self, name: str) -> int:
        return self.routes.get(name.removeprefix(ROUTE_PREFIX), self.default)


def _too_large(size: int | None, limit: int) -> PanelError:
    if size is None:  # sent without a length: cut off once past the limit
        return PanelError(
            413,
            f"The request body is larger than this address accepts (at most {fmt_size(limit)}), "
            "so the rest was not read and nothing changed.",
        )
    return PanelError(
        413,
        f"The request body is {fmt_size(size)}; this address accepts at most {fmt_size(limit)}, "
        "so nothing was read or changed.",
    )


_BODYLESS = ("GET", "HEAD", "OPTIONS")
_JSON_TYPES = ("application/json",)


def admission(
    limits: BodyLimits, early_check: Callable[[Request], None] | None = None
) -> Callable[[Request], Awaitable[None]]:
    """What runs before a route reads anything: the body's size, the permission check when the user is
    already known (``early_check``), then the body read with a cap and its JSON nesting bounded."""

    async def admit(request: Request) -> None:
        if request.method in _BODYLESS:
            return
        limit = limits.for_route(getattr(request.scope.get("route"), "name", "") or "")
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise PanelError(400, f"The Content-Length header {declared!r:.30} is not a number.") from None
            if size > limit:
                raise _too_large(size, limit)
        if early_check is not None:
            early_check(request)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _too_large(None, limit)
        except ClientDisconnect:  # nobody is left to answer; nothing was read into a change
            raise PanelError(400, "The request ended before its body did, so nothing was changed.") from None
        request._body = bytes(body)  # what the route, its form and its CSRF check read from now on
        if body and request.headers.get("content-type", "").split(";")[0].strip().lower() in _JSON_TYPES:
            check_depth(request._body, "The request's JSON")

    return admit


def early_permission_check(panel: Any, guard: Callable[[Request], Any]) -> Callable[[Request], None]:
    """The permission guard, run before the body only when the host already knows who is signed in (or says
    nobody can be: no ``current_user``); otherwise the guard runs as the route's dependency, as before."""

    def check(request: Request) -> None:
        if panel.current_user is None or panel.user(request):
            guard(request)

    return check
