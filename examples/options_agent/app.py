"""The options agent's web app (stand-in): Dashboard, Settings, Backtests, and the calibration panel.

The real agent already has a FastAPI app with these pages; the calibration panel arrives as a
plugin and is added with one ``include_router`` line, under Settings in the nav. Run it with
``calibration-policy serve --data demo-output`` or ``uvicorn examples.options_agent.app:app``.

A data folder holds what the library writes: ``calibration_runs/``, ``config_archive/``,
``suggestions/``, an optional ``calibration_policy.toml`` and, for demos, one vol surface file per
underlying in ``config/vol_surface_<U>.json`` (otherwise the agent's own config file is used).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from calibration_policy import live_config_copy, open_store
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.plugins import get_target_factory, load_plugins_dir
from calibration_policy.tamper import load_in_force
from calibration_policy.users import users_file
from calibration_policy_ui.login import LOCAL_USER, SignIn

AGENT_DIR = Path(__file__).resolve().parent
PLUGINS_DIR = AGENT_DIR / "plugins"
DATA_ENV = "OPTIONS_AGENT_DATA_DIR"
PASSWORD_ENV = "OPTIONS_AGENT_PASSWORD"

if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))


def sign_in_for(data: Path, password: str | None) -> SignIn:
    """The agent's sign-in: the data folder's users file when there is one (each person is who they sign in as),
    else one shared password (everyone is the one user "trader"), else the one local user."""
    users = users_file(data)
    if users.exists():
        return SignIn(users=users, realm="options agent")
    if password is not None:
        return SignIn(single_user="trader", password=password, realm="options agent")
    return SignIn(single_user=LOCAL_USER, realm="options agent")


def make_target_for(data_dir: Path, plugins_dir: Path):
    """The agent's vol surface for an underlying, through its calibration-policy host plugin."""
    load_plugins_dir(plugins_dir)
    factory = get_target_factory("vol_surface")

    def target_for(underlying: str):
        per_underlying = live_config_copy("vol_surface", underlying, data_dir)
        return factory(underlying, str(per_underlying) if per_underlying.is_file() else None)

    return target_for


def create_app(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    plugins_dir: str | os.PathLike[str] | None = None,
    policy_file: str | os.PathLike[str] | None = None,
    password: str | None = None,
    secret: str | None = None,
    sign_in: SignIn | None = None,
) -> FastAPI:
    data = Path(data_dir or os.environ.get(DATA_ENV) or "data")
    password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
    sign_in = sign_in or sign_in_for(data, password)
    require_login = sign_in.dependency()
    load_policy = lambda: load_in_force(policy_file, data_dir=data)  # noqa: E731  (an outside edit is noticed)
    app = FastAPI(title="Options Trading Agent", dependencies=[])
    templates = Jinja2Templates(directory=AGENT_DIR / "templates")
    app.mount("/static", StaticFiles(directory=AGENT_DIR / "static"), name="static")
    target_for = make_target_for(data, Path(plugins_dir or PLUGINS_DIR))

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"user": request.state.user, **context})

    @app.get("/", response_class=HTMLResponse, name="dashboard")
    def dashboard(request: Request, user: str = Depends(require_login)) -> HTMLResponse:
        store = open_store(data / "calibration_runs")
        rows = []
        for underlying in store.underlyings():
            latest = store.latest(underlying, limit=1)
            rows.append({"underlying": underlying, "run": latest[0] if latest else None})
        return page(request, "dashboard.html", active_page="dashboard", rows=rows)

    @app.get("/settings", response_class=HTMLResponse, name="settings")
    def settings(request: Request, user: str = Depends(require_login)) -> HTMLResponse:
        configs = []
        for underlying in open_store(data / "calibration_runs").underlyings():
            try:
                target = target_for(underlying)
                configs.append(
                    {
                        "underlying": underlying,
                        "name": target.name,
                        "values": target.values(target.load()),
                        "error": None,
                    }
                )
            except CalibrationPolicyError as error:
                configs.append({"underlying": underlying, "name": underlying, "values": {}, "error": str(error)})
        return page(request, "settings.html", active_page="settings", configs=configs)

    @app.get("/backtests", response_class=HTMLResponse, name="backtests")
    def backtests(request: Request, user: str = Depends(require_login)) -> HTMLResponse:
        return page(request, "backtests.html", active_page="backtests")

    # The calibration panel: one line (plus its settings) in the host's app.
    from calibration_policy_ui import create_router

    app.include_router(
        create_router(
            history_dir=data / "calibration_runs",
            archive_dir=data / "config_archive",
            suggestions_dir=data / "suggestions",
            policy=load_policy,
            target_for=target_for,
            dependencies=[Depends(require_login)],
            templates=templates,
            base_template="base.html",
            current_user=lambda request: getattr(request.state, "user", None),
            secret=secret,
            # the users file's roles add to the policy's [permissions] table
            permissions=sign_in.users.permissions(load_policy) if sign_in.users is not None else None,
        ),
        prefix="/calibration",
    )
    return app


app = create_app()
