"""The panel's plugin for the core: the ``serve`` command and the panel's built-in tabs.

Registered through the ``calibration_policy`` entry-point group, like a third party's plugin. This
module imports nothing from FastAPI at import time (each tab's module loads when the panel builds),
so the core CLI keeps working where the ``[ui]`` extra is absent; ``serve`` then says how to install it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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


def serve(data: Path, host: str, port: int, plugins_dir: str | None, app: Path | None) -> None:
    """Serve the host's app, or the panel on its own, on ``data`` until Ctrl+C (the ``serve`` command)."""
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
    @click.option("--plugins-dir", metavar="DIR", help="Folder of host plugins (sources, targets, tabs).")
    @click.option(
        "--app",
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="A host app file with create_app(data_dir=..., plugins_dir=...) (default: the panel on its own).",
    )
    def serve_command(data: Path, host: str, port: int, plugins_dir: str | None, app: Path | None) -> None:
        """Open the calibration panel, every installed domain's tab, on a data folder (needs the [ui] extra)."""
        serve(data, host, port, plugins_dir, app)


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
