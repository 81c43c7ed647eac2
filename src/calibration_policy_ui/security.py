"""CSRF and cross-site protection for every state-changing route, plus signed cookies.

Two independent checks, because each one alone has known gaps:

* **Fetch metadata / Origin**: a browser marks a request from another site with
  ``Sec-Fetch-Site: cross-site`` and an ``Origin`` that is not ours; such a request is refused
  before anything else is read.
* **Signed double-submit token**: the page carries a token in a hidden field (or a script sends
  it in ``X-CSRF-Token``) and the same value sits in a ``SameSite=Strict`` cookie. The cookie is
  HMAC-signed with a server secret, so a sibling sub-domain that can plant cookies still cannot
  mint a valid one; the two are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from calibration_policy.redact import get_logger

from .errors import PanelError

log = get_logger(__name__)

CSRF_COOKIE = "calibration_panel_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
FLASH_COOKIE = "calibration_panel_flash"
SECRET_ENV = "CALIBRATION_PANEL_SECRET"


class Signer:
    """HMAC-SHA256 signatures with one secret (per process unless the host passes one)."""

    def __init__(self, secret: str | bytes | None = None) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._key = secret or secrets.token_bytes(32)

    def sign(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"

    def unsign(self, signed: str | None) -> str | None:
        """The value inside ``signed``, or None when it is missing or was not signed by us."""
        if not signed or "." not in signed or len(signed) > 4096:
            return None
        value = signed.rsplit(".", 1)[0]
        return value if hmac.compare_digest(self.sign(value), signed) else None


SECRET_FILE = ".panel_secret"


def stored_secret(folder: str | os.PathLike[str]) -> bytes | None:
    """The panel's signing secret kept in ``folder/.panel_secret`` (created 0600 on first use), so open
    forms and cookies keep working across a restart; None when the folder cannot hold it."""
    path = Path(folder) / SECRET_FILE
    for _ in range(2):
        try:
            with open(path, "rb") as handle:
                key = handle.read()
            if len(key) >= 32:
                return key
            log.warning("The panel secret %s is too short; using a per-process secret.", path)
            return None
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("Cannot read the panel secret %s (%s); using a per-process secret.", path, error.strerror)
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # another process made it just now: read theirs
        except OSError as error:
            log.warning(
                "Cannot store the panel secret in %s (%s); using a per-process secret.", path.parent, error.strerror
            )
            return None
        key = secrets.token_hex(32).encode()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return key
    return None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- CSRF ------------------------------------------------------------------------------------------


def csrf_token(request: Request, signer: Signer) -> str:
    """The token for this browser: its valid cookie's, else a new one (set later by :func:`set_csrf_cookie`)."""
    current = request.cookies.get(CSRF_COOKIE)
    if signer.unsign(current) is not None:
        return current  # type: ignore[return-value]
    token = getattr(request.state, "calibration_csrf", None)
    if token is None:
        token = request.state.calibration_csrf = signer.sign(secrets.token_urlsafe(24))
    return token


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/")


def check_same_origin(request: Request, trusted_origins: frozenset[str]) -> None:
    """Refuse requests a browser says come from another site (403)."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise PanelError(
            403, "This request came from another website and was refused; use the calibration panel itself."
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    if origin == "null" or not parts.netloc or (parts.netloc != host and origin.rstrip("/") not in trusted_origins):
        raise PanelError(
            403, "This request came from another website and was refused; use the calibration panel itself."
        )


async def check_csrf(request: Request, signer: Signer, trusted_origins: frozenset[str]) -> None:
    """The whole check for a state-changing request; raises a 403 :class:`PanelError`."""
    check_same_origin(request, trusted_origins)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    cookie = request.cookies.get(CSRF_COOKIE)
    if (
        not sent
        or not cookie
        or signer.unsign(cookie) is None
        or not hmac.compare_digest(sent.encode(), cookie.encode())
    ):
        raise PanelError(
            403,
            "The security token of this form is missing or out of date, so nothing was changed. "
            "Reload the calibration page and try again.",
        )


# -- flash messages ---------------------------------------------------------------------------------


def set_flash(request: Request, response: Response, signer: Signer, text: str, kind: str = "success") -> None:
    """Carry one message across the redirect after a POST, signed so nobody else can plant one."""
    payload = base64.urlsafe_b64encode(json.dumps({"text": text, "kind": kind}).encode()).decode()
    response.set_cookie(
        FLASH_COOKIE,
        signer.sign(payload),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
        max_age=120,
    )


def read_flash(request: Request, signer: Signer) -> dict[str, str] | None:
    """The message a redirect carried, if it is ours; the page then clears it with :func:`clear_flash`."""
    payload = signer.unsign(request.cookies.get(FLASH_COOKIE))
    if payload is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return {"text": str(data["text"]), "kind": "error" if data.get("kind") == "error" else "success"}
    except (ValueError, KeyError, TypeError):
        return None


def clear_flash(request: Request, response: Response) -> None:
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
