"""Errors become a plain sentence and a 4xx status, never a traceback.

An ``APIRouter`` cannot hold exception handlers (they belong to the app, which is the
host's), so every route of the panel is built with :func:`panel_route_class`, whose handler
catches our errors and the core's around the route code itself. The class survives
``include_router`` (FastAPI keeps each route's class), so the guard travels with the routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, TypedDict

from fastapi import params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from calibration_policy.errors import (
    CalibrationPolicyError,
    DataFolderError,
    PermissionCheckError,
    PermissionDeniedError,
    StaleChangeError,
    StoreError,
)
from calibration_policy.redact import get_logger, mask

log = get_logger(__name__)

API_TAG = "calibration panel API"


class RouteOptions(TypedDict, total=False):
    """Keyword arguments several routes share (``router.get(..., **options)``), typed as FastAPI takes them."""

    tags: list[str | Enum]
    responses: dict[int | str, dict[str, Any]]
    dependencies: Sequence[params.Depends]
    include_in_schema: bool


SERVER_ERROR = "Something went wrong on the server and nothing was changed; the details are in the server log."

_TEXT_TYPES = ("application/json", "text/")


def masked_response(response: Response) -> Response:
    """``response`` with any store password in its body masked (:func:`calibration_policy.redact.mask`).

    Every route's answer passes here (the panel's route class calls it), a plugin tab's too, so no page,
    JSON answer or error message can show a password even if a route forgets to mask what it shows.
    """
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or not body:
        return response  # a streamed or empty answer (the static files): nothing of ours to mask
    if not response.headers.get("content-type", "").startswith(_TEXT_TYPES):
        return response
    charset = getattr(response, "charset", None) or "utf-8"
    text = body.decode(charset, errors="replace")
    shown = mask(text)
    if shown != text:
        response.body = shown.encode(charset)
        response.headers["content-length"] = str(len(response.body))
    return response


class PanelError(Exception):
    """A refusal with its HTTP status and the sentence the user sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "body", "path", "form", "header", "cookie")]
    return ".".join(parts) or "the request"


def validation_message(error: RequestValidationError) -> str:
    """FastAPI's list of problems as one sentence: ``page must be a whole number (got 'x')``."""
    problems = []
    for item in error.errors()[:3]:
        message = (
            str(item.get("msg", "is not valid")).replace("Input should be", "must be").removeprefix("Value error, ")
        )
        message = message.replace("Field required", "is required")
        got = item.get("input")
        shown = f" (got {got!r:.40})" if isinstance(got, (str, int, float)) and item.get("type") != "missing" else ""
        problems.append(f"{_field(tuple(item.get('loc', ())))} {message[:1].lower()}{message[1:]}{shown}")
    return "Invalid request: " + "; ".join(problems) + "."


ErrorRenderer = Callable[[Request, int, str], Response]


def panel_route_class(
    render_error: ErrorRenderer, admit: Callable[[Request], Awaitable[None]] | None = None
) -> type[APIRoute]:
    """A route class whose handler turns errors into ``render_error`` pages or JSON ``{"detail"}``, and runs
    ``admit(request)`` before the route reads anything (the body limits: :mod:`calibration_policy_ui.limits`)."""

    class PanelRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()
            is_api = API_TAG in (self.tags or [])

            async def guarded(request: Request) -> Response:
                try:
                    if admit is not None:
                        await admit(request)
                    return masked_response(await handler(request))
                except HTTPException:
                    raise  # the host's auth and other deliberate HTTP errors keep their own handling
                except PanelError as error:
                    status, message = error.status, error.message
                except RequestValidationError as error:
                    status, message = 400, validation_message(error)
                except DataFolderError as error:  # the server's data is damaged, not the request: say which folder
                    log.warning("Calibration panel on %s %s: %s", request.method, request.url.path, error)
                    status, message = 503, str(error)
                except StaleChangeError as error:  # based on values someone changed since: nothing was changed
                    status, message = 409, str(error)
                except PermissionDeniedError as error:  # the server's check: nothing was written
                    status, message = 403, str(error)
                except StoreError as error:  # the database is down or refuses us: the server's problem, said plainly
                    log.warning("Calibration panel on %s %s: %s", request.method, request.url.path, error)
                    status, message = 503, str(error)
                except PermissionCheckError as error:  # the host's permission check failed
                    log.warning("Calibration panel on %s %s: %s", request.method, request.url.path, error)
                    status, message = 503, str(error)
                except CalibrationPolicyError as error:
                    status, message = 400, str(error)
                except Exception:
                    log.exception("Calibration panel error on %s %s", request.method, request.url.path)
                    status, message = 500, SERVER_ERROR
                message = mask(message)
                if is_api:
                    return JSONResponse({"detail": message}, status_code=status, headers={"Cache-Control": "no-store"})
                try:
                    return masked_response(render_error(request, status, message))
                except Exception:
                    log.exception("Could not render the calibration panel's error page")
                    return PlainTextResponse(message, status_code=status)

            return guarded

    return PanelRoute
