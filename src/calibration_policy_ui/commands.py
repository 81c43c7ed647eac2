"""The panel's plugin for the core: the ``serve`` command and the panel's built-in tabs.

Registered through the ``calibration_policy`` entry-point group, like a third party's plugin. This
module imports nothing from FastAPI at import time (each tab's module loads when the panel builds),
so the core CLI keeps working where the ``[ui]`` extra is absent; ``serve`` then says how to install it.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.hookspecs import hookimpl

from .tabs import register_tab_kind

register_tab_kind()  # this entry point is how the core learns the panel's tabs are a kind of plugin record

if TYPE_CHECKING:
    import click


def load_app_factory(path: Path | None):
    """``create_app`` from the host's app file (a script in a repo, not an installed package), else the
    panel's own minimal app, which serves every installed domain with no host at all."""
    if path is None:
        from .app import create_app

        return create_app
    if not path.is_file():
        raise CalibrationPolicyError(
            f"Cannot find the host's app at {path}; pass --app FILE with a create_app(data_dir=...) function, "
            "or leave --app out to serve the panel on its own."
        )
    spec = importlib.util.spec_from_file_location("calibration_policy_serve_app", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    factory = getattr(module, "create_app", None)
    if not callable(factory):
        raise CalibrationPolicyError(f"{path} has no create_app(data_dir=...) function to serve.")
    return factory


@dataclass(frozen=True)
class ServeOptions:
    """How ``serve`` signs people in and bounds request bodies (its command-line options)."""

    users: Path | None = None
    proxy_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    single_user: str | None = None
    body_limit: str | None = None
    upload_limit: str | None = None


def sign_in_of(data: Path, options: ServeOptions) -> Any:
    """The sign-in ``serve`` uses: a proxy header and/or a users file when given (or a users.json in the data
    folder), else the explicit single-user mode (one shared password from $OPTIONS_AGENT_PASSWORD, or none)."""
    import os

    from calibration_policy.users import UsersFile, users_file

    from .login import LOCAL_USER, SignIn

    users: UsersFile | None = UsersFile(options.users) if options.users else users_file(data)
    if options.users and users is not None and not users.exists():
        raise CalibrationPolicyError(
            f"The users file {options.users} does not exist; add someone with `calibration-policy users add NAME`."
        )
    if options.single_user is not None and users is not None and users.exists() and not options.users:
        users = None  # --single-user asks for the shared mode even where a users file exists
    has_users = users is not None and users.exists()
    if has_users or options.proxy_header:
        return SignIn(
            users=users if has_users else None,
            proxy_header=options.proxy_header,
            trusted_proxies=frozenset(options.trusted_proxies),
            realm="options agent",
        )
    password = os.environ.get("OPTIONS_AGENT_PASSWORD") or None
    return SignIn(single_user=options.single_user or ("trader" if password else LOCAL_USER), password=password)


def serve(
    data: Path, host: str, port: int, plugins_dir: str | None, app: Path | None, options: ServeOptions | None = None
) -> None:
    """Serve the host's app, or the panel on its own, on ``data`` until Ctrl+C (the ``serve`` command)."""
    import inspect
    import os

    options = options or ServeOptions()
    try:
        import uvicorn

        import calibration_policy_ui  # noqa: F401  (fails early without fastapi/jinja2)
    except ImportError:
        raise CalibrationPolicyError(
            "The calibration panel needs the [ui] extra: pip install 'calibration-policy[ui]'."
        ) from None
    if not data.is_dir():
        raise CalibrationPolicyError(
            f"The data folder {data} does not exist; run `calibration-policy demo --out {data}` or pass --data DIR."
        )
    from calibration_policy.redact import get_logger, mask_handlers
    from calibration_policy.tamper import load_in_force

    from .limits import BODY_LIMIT_ENV, UPLOAD_LIMIT_ENV, BodyLimits

    for env, value in ((BODY_LIMIT_ENV, options.body_limit), (UPLOAD_LIMIT_ENV, options.upload_limit)):
        if value is not None:
            os.environ[env] = value
    BodyLimits.from_env()  # a malformed size stops here, not at the first request
    sign_in = sign_in_of(data, options)
    sign_in.check_policy(load_in_force(data_dir=data))
    factory = load_app_factory(app)
    extra = {"sign_in": sign_in} if "sign_in" in inspect.signature(factory).parameters else {}
    served = factory(data_dir=data, plugins_dir=plugins_dir, **extra)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"Calibration panel: http://{shown}:{port}/calibration/  (data: {data}; sign-in: {sign_in.describe()}; "
        "stop with Ctrl+C)",
        file=sys.stderr,
    )
    mask_handlers()  # a library's log line is masked too: the root's handlers, and uvicorn's own loggers
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        get_logger(name)
    uvicorn.run(served, host=host, port=port, log_level="warning")


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click  # only the CLI pays for click

    @cli.command("serve")
    @click.option(
        "--data",
        default="data",
        show_default=True,
        type=click.Path(path_type=Path),
        metavar="DIR",
        help="Folder with calibration_runs/, config_archive/… (the demo writes demo-output).",
    )
    @click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to listen on (127.0.0.1: this computer only)."
    )
    @click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port.")
    @click.option("--plugins-dir", metavar="DIR", help="Folder of host plugins (sources, targets, tabs).")
    @click.option(
        "--app",
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="A host app file with create_app(data_dir=..., plugins_dir=...) (default: the panel on its own).",
    )
    @click.option(
        "--users",
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Users file (`calibration-policy users add`); default: users.json in the data folder, when there is one.",
    )
    @click.option(
        "--trusted-proxy-header",
        metavar="HEADER",
        help="A signing-in reverse proxy's header naming the user (X-Forwarded-User); needs --trusted-proxy.",
    )
    @click.option(
        "--trusted-proxy",
        "trusted_proxies",
        multiple=True,
        metavar="ADDRESS",
        help="Address of that proxy (repeat for more); the header from anywhere else is ignored.",
    )
    @click.option(
        "--single-user",
        metavar="NAME",
        help="One shared sign-in ($OPTIONS_AGENT_PASSWORD, or none): everyone is NAME. Refused with four-eyes settings.",
    )
    @click.option("--body-limit", metavar="SIZE", help="Largest form or JSON change (default 64KiB).")
    @click.option("--upload-limit", metavar="SIZE", help="Largest trades upload (default 20MiB).")
    def serve_command(
        data: Path,
        host: str,
        port: int,
        plugins_dir: str | None,
        app: Path | None,
        users: Path | None,
        trusted_proxy_header: str | None,
        trusted_proxies: tuple[str, ...],
        single_user: str | None,
        body_limit: str | None,
        upload_limit: str | None,
    ) -> None:
        """Open the calibration panel, every installed domain's tab, on a data folder (needs the [ui] extra)."""
        options = ServeOptions(users, trusted_proxy_header, trusted_proxies, single_user, body_limit, upload_limit)
        serve(data, host, port, plugins_dir, app, options)


@hookimpl
def register_panel_tabs(register) -> None:
    from .tabs import PanelTab, lazy

    runs, weights, lab = (f"calibration_policy_ui.tabs.{name}" for name in ("runs", "scoring_weights", "lab"))
    register(
        PanelTab(
            "runs",
            lazy(runs, "title"),
            lazy(runs),
            route="panel",
            description="The live values, the latest run, whether it went live and why.",
            order=0,
        )
    )
    register(
        PanelTab(
            "scoring_weights",
            "Scoring weights",
            lazy(weights),
            route="weights",
            description="The trade-scoring model's four weights: suggestions, review, evidence, history.",
            order=10,
        )
    )
    register(
        PanelTab(
            "lab",
            "Try a policy",
            lazy(lab),
            route="lab",
            description="Replay candidate thresholds over the recorded runs and propose them for approval.",
            order=20,
        )
    )
