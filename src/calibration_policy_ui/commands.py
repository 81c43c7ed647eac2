"""``calibration-policy serve``: open the options agent's app, with the panel, on a data folder.

Registered through the ``calibration_policy`` entry-point group. This module imports nothing
from FastAPI at import time, so the core CLI keeps working where the ``[ui]`` extra is absent;
``serve`` then says how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.hookspecs import hookimpl

DEFAULT_APP = Path("examples") / "options_agent" / "app.py"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use 1 to 65535, for example 8000")
    return port


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


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        import calibration_policy_ui  # noqa: F401  (fails early without fastapi/jinja2)
    except ImportError:
        raise CalibrationPolicyError(
            "The calibration panel needs the [ui] extra: pip install 'calibration-policy[ui]'."
        ) from None
    data = Path(args.data)
    if not data.is_dir():
        raise CalibrationPolicyError(
            f"The data folder {data} does not exist; run `calibration-policy demo --out {data}` or pass --data DIR."
        )
    app = load_app_factory(Path(args.app))(data_dir=data, plugins_dir=args.plugins_dir)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Calibration panel: http://{shown}:{args.port}/calibration/  (data: {data}; stop with Ctrl+C)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


@hookimpl
def register_commands(commands) -> None:
    serve = commands.add_parser("serve", help="open the agent's web app with the calibration panel (needs the [ui] extra)")
    serve.add_argument("--data", default="data", metavar="DIR",
                       help="folder with calibration_runs/, config_archive/… (default data; the demo writes demo-output)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--plugins-dir", metavar="DIR", help="folder of host plugins (default: the agent's own)")
    serve.add_argument("--app", default=str(DEFAULT_APP), metavar="FILE", help=f"the host app file (default {DEFAULT_APP})")
    serve.set_defaults(func=cmd_serve)
