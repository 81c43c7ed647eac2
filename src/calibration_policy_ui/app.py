"""The panel on its own: a minimal FastAPI app for ``calibration-policy serve`` when no host app is given.

A host adds the panel to the app it already has (``create_router``); without one, this app serves
every installed domain's tab on a data folder, from any working directory: each underlying's live
config is the data folder's own copy (``<data>/config/<domain>_<U>.json``, as the demo writes) or
else what the domain's target plugin opens by default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from calibration_policy import CalibrationUpdatePolicy, live_config_copy
from calibration_policy.plugins import get_target_factory, load_plugins_dir
from calibration_policy.target import Target

if TYPE_CHECKING:
    from .login import SignIn

PREFIX = "/calibration"


def data_folder_target_for(data: Path, policy):
    """``target_for(underlying)`` for the domain the policy governs *now* (an edited policy shows at once)."""

    def target_for(underlying: str) -> Target:
        domain = policy().domain
        copy = live_config_copy(domain, underlying, data)
        return get_target_factory(domain)(underlying, str(copy) if copy.is_file() else None)

    return target_for


def create_app(
    data_dir: str | os.PathLike[str],
    *,
    plugins_dir: str | os.PathLike[str] | None = None,
    policy_file: str | os.PathLike[str] | None = None,
    secret: str | None = None,
    sign_in: SignIn | None = None,
) -> FastAPI:
    """The panel at ``/calibration/`` on ``data_dir``, with ``/`` sending the browser there; with ``sign_in``
    (what ``serve`` passes) every page asks who is there, and that name is who acts."""
    from . import create_router

    data = Path(data_dir)
    if plugins_dir is not None:
        load_plugins_dir(plugins_dir)

    def policy() -> CalibrationUpdatePolicy:
        return CalibrationUpdatePolicy.load(policy_file, data_dir=data)

    signed: dict[str, Any] = {}
    if sign_in is not None:
        signed = {
            "current_user": lambda request: getattr(request.state, "user", None),
            # the users file's roles add to the policy's [permissions] table
            "permissions": sign_in.users.permissions(policy) if sign_in.users is not None else None,
        }
    app = FastAPI(title="Calibration panel", docs_url=None, redoc_url=None, openapi_url=None)
    if sign_in is not None:  # a middleware, not a route dependency: the user is known before any body is read
        app.middleware("http")(sign_in.middleware())
    app.include_router(
        create_router(
            target_for=data_folder_target_for(data, policy),
            history_dir=data / "calibration_runs",
            archive_dir=data / "config_archive",
            suggestions_dir=data / "suggestions",
            policy=policy,
            secret=secret,
            **signed,
        ),
        prefix=PREFIX,
    )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/")

    return app
