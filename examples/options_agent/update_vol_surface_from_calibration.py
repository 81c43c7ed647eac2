"""Calibrate one underlying and update the vol surface config — when the policy says so.

The invocation is unchanged from the old script, which overwrote the live multipliers on every
run however thin or noisy the day was:

    python examples/options_agent/update_vol_surface_from_calibration.py --underlying SPY \\
        --source harvested --date 2025-12-10

Now the result goes through calibration-policy: the run is recorded, smoothed over recent runs,
checked against the policy, and written (with the replaced config archived) only if it passes;
otherwise the config file stays byte-for-byte the same. New optional flags: ``--policy FILE``,
``--dry-run``, ``--force``, ``--json`` (and ``--history-dir`` / ``--archive-dir``).

This stand-in has no broker: ``--source live`` replays the harvested chain of ``--date`` (or of
the latest harvested date) as if it had just been fetched.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.pipeline import UpdateOutcome, run_time_for, run_update
from plugins.calibration_policy_host import VolSurfaceTarget
from src.calibration_config import CalibrationConfig, HarvestSettings
from src.calibration_extended import (
    harvest_dir_for,
    latest_date,
    run_historical_calibration_from_harvest,
)
from src.cli_support import DEFAULT_HARVEST_DIR, add_market_arguments, report_errors

DATA_DIR = DEFAULT_HARVEST_DIR.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Calibrate, then update the IV multipliers if the calibration policy says the change is worth it."
    )
    add_market_arguments(parser)
    parser.add_argument("--source", choices=["live", "harvested"], default="harvested")
    parser.add_argument(
        "--policy",
        type=Path,
        help="policy TOML (default: $CALIBRATION_POLICY, else data/calibration_policy.toml, else built-in)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would happen; write nothing")
    parser.add_argument(
        "--force", action="store_true", help="apply even if the policy says no (recorded as forced by user)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument(
        "--history-dir",
        type=Path,
        default=Path(os.environ.get("CALIBRATION_HISTORY_DIR") or DATA_DIR / "calibration_runs"),
        help="where calibration runs are recorded (default data/calibration_runs)",
    )
    parser.add_argument(
        "--archive-dir",
        type=Path,
        default=Path(os.environ.get("CALIBRATION_ARCHIVE_DIR") or DATA_DIR / "config_archive"),
        help="where replaced configs are archived (default data/config_archive)",
    )
    return parser.parse_args(argv)


def calibration_config(args: argparse.Namespace) -> CalibrationConfig:
    return CalibrationConfig(source=args.source, harvest=HarvestSettings(dir=str(args.harvest_dir)))


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the calibration for the requested underlying and date (validated before any file access)."""
    folder = harvest_dir_for(args.harvest_dir, args.underlying)
    day = args.date if args.date is not None else latest_date(folder)
    return run_historical_calibration_from_harvest(calibration_config(args), folder, day)


def gated_update(args: argparse.Namespace, result: dict[str, Any]) -> UpdateOutcome:
    """Record, smooth, decide and (only if the policy agrees) write, through calibration-policy."""
    policy = CalibrationUpdatePolicy.load(args.policy, data_dir=DATA_DIR)
    day = date.fromisoformat(result["snapshot_sensors"]["date"])
    return run_update(
        {**result, "config": calibration_config(args).to_dict()},
        underlying=args.underlying,
        source=args.source,
        target=VolSurfaceTarget(args.config),
        options=UpdateOptions(timestamp=run_time_for(day), force=args.force, dry_run=args.dry_run),
        context=Context.build(policy=policy, history_dir=args.history_dir, archive_dir=args.archive_dir),
    )


def summary(result: dict[str, Any], outcome: UpdateOutcome) -> str:
    sensors, metrics = result["snapshot_sensors"], result["global_metrics"]
    lines = [
        (
            f"Calibrated {sensors['underlying']} on {sensors['date']} ({sensors['source']}): {metrics['n']} liquid "
            f"options, {result['dropped_count']} dropped, vega {metrics['vega_sum']:,.0f}, "
            f"MAE {metrics['mae_vol_points']:.2f} vol points."
        ),
        outcome.summary(),
    ]
    if result["empty_bands"]:
        lines.append(f"No liquid options in band(s) {', '.join(result['empty_bands'])}; left unchanged.")
    if sensors["source"] == "live":
        lines.append("Note: this stand-in has no broker; 'live' replayed the harvested chain of that date.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> None:
        result = calibrate(args)
        outcome = gated_update(args, result)
        if args.json:
            print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True))
            return
        print(summary(result, outcome))
        print(f"Wrote {args.config}." if outcome.applied else f"{args.config} left unchanged.")

    return report_errors(run)


if __name__ == "__main__":
    raise SystemExit(main())
