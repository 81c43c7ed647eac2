"""Secrets never leave the process: one masking rule for every screen, JSON answer, message and log line.

A store URL carries a database password (``postgresql://user:pw@host/db``, ``…?password=pw``, or a
keyword/value conninfo ``host=h password=pw``). Whatever shows text to a person or a log passes it
through :func:`mask`, which hides the password and keeps the rest (user, host, database) so the
message still says *where*. Passwords this process resolved itself (from ``env:``/``file:`` store
settings or an opened URL) are also remembered and hidden wherever they appear verbatim, so a
driver's error message that echoes one is caught too.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

HIDDEN = "***"

# user:password@ in a URL (the password may hold anything but whitespace, a slash or an @)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^\s:/@'\"<>]*):(?P<pw>[^\s/'\"<>]*)@", re.IGNORECASE)
# password=… as a query parameter or a conninfo keyword (quoted with '…' or bare)
_KEY_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<pw>'(?:\\.|[^'\\])*'|[^\s&;,'\"<>]+)",
    re.IGNORECASE,
)

_known: set[str] = set()
_known_lock = threading.Lock()


def remember(secret: str | None) -> None:
    """Hide ``secret`` (and its URL-decoded form) wherever it appears in masked text from now on."""
    if not secret or len(secret) < 6:  # a short "password" would blank out ordinary words
        return
    with _known_lock:
        _known.update(s for s in (secret, unquote(secret)) if len(s) >= 6)


def remember_url(url: str) -> None:
    """Remember the password inside a store URL or conninfo string (see :func:`remember`)."""
    try:
        remember(urlsplit(url).password)
    except ValueError:
        pass
    for pattern in (_URL_PASSWORD, _KEY_PASSWORD):
        for match in pattern.finditer(url):
            remember(match["pw"].strip("'"))


def mask(text: str) -> str:
    """``text`` with every password it holds replaced by ``***``: safe to show and to log."""
    if not isinstance(text, str):
        text = str(text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{HIDDEN}@", text)
    text = _KEY_PASSWORD.sub(lambda m: m["head"] + HIDDEN, text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)  # a longer secret first: it may contain a shorter one
    for secret in known:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


def mask_data(value: Any) -> Any:
    """:func:`mask` over every string in a JSON-like value (dicts, lists, strings), keys included."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask_data(k): mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """A logging filter that masks the message and any traceback of each record it sees.

    On a logger it covers the records logged there; on a handler, every record the handler writes
    (``serve`` puts it on the root logger's handlers, and a host may do the same on its own).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


_FILTER = MaskingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`MaskingFilter` on it: what every module of ours logs through."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def mask_handlers(logger: logging.Logger | None = None) -> None:
    """Put :class:`MaskingFilter` on every handler of ``logger`` (default: the root logger), so a
    library's log line (a database driver's, the web server's) is masked too."""
    for handler in (logger or logging.getLogger()).handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
