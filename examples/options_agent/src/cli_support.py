"""What the agent's command-line scripts share: default paths, common flags, error reporting.

Defaults are anchored at the repository, so the scripts behave the same from any working
directory; paths given on the command line are taken relative to the working directory as usual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = AGENT_DIR.parents[1]
DEFAULT_HARVEST_DIR = REPO_ROOT / "data" / "harvest"
DEFAULT_VOL_SURFACE = AGENT_DIR / "config" / "vol_surface.json"


def add_market_arguments(parser: argparse.ArgumentParser) -> None:
    """--underlying, --date, --harvest-dir and --config, as every script takes them."""
    parser.add_argument("--underlying", required=True, help="symbol, e.g. SPY")
    parser.add_argument("--date", help="YYYY-MM-DD (default: the latest harvested date)")
    parser.add_argument(
        "--harvest-dir", type=Path, default=DEFAULT_HARVEST_DIR, help="folder holding <UNDERLYING>/<date>.parquet"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_VOL_SURFACE, help="vol surface config JSON")


def report_errors(body: Callable[[], None]) -> int:
    """Run ``body``; turn bad input into one sentence on stderr and exit code 2, not a traceback."""
    try:
        body()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
