"""Calibrate one underlying and write the recommended IV multipliers into the vol surface config.

This is the host's OLD behaviour: every run overwrites the live multipliers, however thin, noisy
or unusual the day was. It is kept as three small steps (``parse_args``, ``calibrate``,
``write_surface``) so a policy gate can sit between calibrating and writing without changing
how the script is invoked:

    python examples/options_agent/update_vol_surface_from_calibration.py --underlying SPY \\
        --source harvested --date 2025-12-10

This stand-in has no broker: ``--source live`` replays the harvested chain of ``--date`` (or of
the latest harvested date) as if it had just been fetched.
"""

from __future__ import annotations

import argparse
from typing import Any

from src.calibration_config import CalibrationConfig, HarvestSettings
from src.calibration_extended import (
    harvest_dir_for,
    latest_date,
    run_historical_calibration_from_harvest,
)
from src.cli_support import add_market_arguments, report_errors
from src.synthetic import VolSurfaceConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Calibrate and write the recommended IV multipliers.")
    add_market_arguments(parser)
    parser.add_argument("--source", choices=["live", "harvested"], default="harvested")
    return parser.parse_args(argv)


def calibration_config(args: argparse.Namespace) -> CalibrationConfig:
    return CalibrationConfig(source=args.source, harvest=HarvestSettings(dir=str(args.harvest_dir)))


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the calibration for the requested underlying and date (validated before any file access)."""
    folder = harvest_dir_for(args.harvest_dir, args.underlying)
    day = args.date if args.date is not None else latest_date(folder)
    return run_historical_calibration_from_harvest(calibration_config(args), folder, day)


def write_surface(args: argparse.Namespace, result: dict[str, Any]) -> tuple[VolSurfaceConfig, VolSurfaceConfig]:
    """Apply ``recommended_vol_surface`` to the config file; returns (before, after)."""
    recommended = result["recommended_vol_surface"]
    before = VolSurfaceConfig.load(args.config)
    after = before.with_multipliers(
        {"global": recommended["iv_multiplier"], **recommended["bands"]}, calibration_config(args)
    )
    after.save(args.config)
    return before, after


def summary(result: dict[str, Any], before: VolSurfaceConfig, after: VolSurfaceConfig) -> str:
    sensors, metrics = result["snapshot_sensors"], result["global_metrics"]
    old, new = before.multipliers(), after.multipliers()
    changes = ", ".join(
        f"{name} {old[name]:.4f} -> {value:.4f}" if name in old else f"{name} (new) {value:.4f}"
        for name, value in new.items()
    )
    lines = [
        (
            f"Calibrated {sensors['underlying']} on {sensors['date']} ({sensors['source']}): {metrics['n']} liquid "
            f"options, {result['dropped_count']} dropped, vega {metrics['vega_sum']:,.0f}, "
            f"MAE {metrics['mae_vol_points']:.2f} vol points after recalibration."
        ),
        f"IV multipliers: {changes}.",
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
        before, after = write_surface(args, result)
        print(summary(result, before, after))
        print(f"Wrote {args.config}.")

    return report_errors(run)


if __name__ == "__main__":
    raise SystemExit(main())
