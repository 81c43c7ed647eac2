"""Where the library's files live: one data root, every folder and file below it unless told otherwise.

The root is ``$CALIBRATION_DATA``, else ``data`` (relative to where the process runs, as the host's
own ``data/`` folder is). Each place can still be set on its own — an argument first, then its own
environment variable — so a host keeps its existing layout.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CALIBRATION_DATA"
POLICY_ENV = "CALIBRATION_POLICY"  # the policy file in force (else calibration_policy.toml in the data folder)
POLICY_FILE_NAME = "calibration_policy.toml"
DEFAULT_DATA_DIR = Path("data")


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def data_path(explicit: str | os.PathLike[str] | None, env: str | None, relative: str) -> Path:
    """``explicit``, else ``$env``, else ``<data root>/relative``."""
    if explicit:
        return Path(explicit)
    if env and os.environ.get(env):
        return Path(os.environ[env])
    return data_root() / relative


def live_config_copy(domain: str, underlying: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where a data folder keeps its own copy of an underlying's live config, ``<root>/config/<domain>_<U>.json``.

    The demo writes one per underlying; every command and the panel then govern that copy instead of the
    host's own config file (when the file is not there, the host's file is the live config)."""
    from .naming import check_underlying

    return Path(root if root is not None else data_root()) / "config" / f"{domain}_{check_underlying(underlying)}.json"
