"""``calibration-policy serve``: open the options agent's app, with the panel, on a data folder.

Registered through the ``calibration_policy`` entry-point group. This module imports nothing
from FastAPI at import time, so the core CLI keeps working where the ``[ui]`` extra is absent;
``serve`` then says how to install it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

DEFAULT_APP = Path("examples") / "options_agent" / "app.py"


def load_app_factory(path: Path):
    """``create_app`` from the host's app file (a script in a repo, not an installed package)."""
    if not path.is_file():
        raise CalibrationPolicyError(
            f"Cannot find the agent's app at {path}; run from the repository root or pass --app FILE."
        )
    spec = importlib.util.spec_from_file_location("calibration_policy_serve_app", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    factory = getattr(module, "create_app", None)
    if not callable(factory):
        raise CalibrationPolicyError(f"{path} has no create_app(data_dir=...) function to serve.")
    return factory


def serve(data: Path, host: str, port: int, plugins_dir: str | None, app: Path) -> None:
    """Serve the host's app on ``data`` until Ctrl+C (the ``serve`` command)."""
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
    served = load_app_factory(app)(data_dir=data, plugins_dir=plugins_dir)
    shown = f"[{host}]" if ":" in host else host
    print(f"Calibration panel: http://{shown}:{port}/calibration/  (data: {data}; stop with Ctrl+C)", file=sys.stderr)
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
    @click.option("--plugins-dir", metavar="DIR", help="Folder of host plugins (default: the agent's own).")
    @click.option(
        "--app",
        default=str(DEFAULT_APP),
        show_default=True,
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="The host app file.",
    )
    def serve_command(data: Path, host: str, port: int, plugins_dir: str | None, app: Path) -> None:
        """Open the agent's web app with the calibration panel (needs the [ui] extra)."""
        serve(data, host, port, plugins_dir, app)
