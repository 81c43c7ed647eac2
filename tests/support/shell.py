"""The shell of a user who runs the printed commands: this environment's programs first on PATH, no
CALIBRATION_/OPTIONS_AGENT_ settings of the test process, wide plain output."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIBRATION_", "OPTIONS_AGENT_"))}
    bin_dir = str(Path(sys.executable).parent)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "COLUMNS": "200", "NO_COLOR": "1", **extra}


def host_environment(cwd: Path, **extra: str) -> dict[str, str]:
    """The shell of a user in the host's folder: it points the library at the host's plugins, as the options
    agent's README says (the library itself never looks for them in the working directory)."""
    plugins = cwd / "examples" / "options_agent" / "plugins"
    return environment(**({"CALIBRATION_PLUGINS_DIR": str(plugins)} if plugins.is_dir() else {}), **extra)
