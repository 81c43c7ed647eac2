"""The options-agent stand-in app on a data folder filled through its own host plugin."""

from __future__ import annotations

import importlib.util
import shutil
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.pipeline import run_update
from calibration_policy.plugins import get_target_factory, load_plugins_dir

from .conftest import T0, host_result

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "examples" / "options_agent"


def agent_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("options_agent_app_under_test", AGENT / "app.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def agent_target(data: Path, underlying: str):
    load_plugins_dir(AGENT / "plugins")
    path = data / "config" / f"vol_surface_{underlying}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(AGENT / "config" / "vol_surface.json", path)
    return get_target_factory("vol_surface")(underlying, str(path))


def fill(data: Path, underlying: str = "SPY", days: int = 8) -> None:
    """``days`` daily runs drifting up; the last one has too few options to be applied."""
    policy = CalibrationUpdatePolicy()
    for day in range(days):
        bump = day * 0.02
        result = host_result(
            global_m=1.0 + bump, weekly=1.02 + bump, monthly=0.99 + bump, n=412 if day < days - 1 else 90
        )
        run_update(
            result,
            underlying=underlying,
            source="harvested",
            target=agent_target(data, underlying),
            options=UpdateOptions(timestamp=T0 + timedelta(days=day)),
            context=Context.build(
                policy=policy,
                history_dir=data / "calibration_runs",
                archive_dir=data / "config_archive",
                suggestions_dir=data / "suggestions",
            ),
        )
