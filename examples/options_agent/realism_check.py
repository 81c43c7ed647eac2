"""Show how far the current synthetic vol surface is from the market on one day (read-only).

For every liquid option the model's IV is ``synthetic_iv`` times the multiplier the config
assigns to its DTE; the mean absolute gap to ``market_iv`` is reported in vol points, globally
and per band:

    python examples/options_agent/realism_check.py --underlying SPY --date 2025-12-10
"""

from __future__ import annotations

import argparse
from typing import Any

from src.calibration_config import CalibrationConfig
from src.calibration_extended import harvest_dir_for, latest_date, liquid_mask, load_harvested_chain
from src.cli_support import add_market_arguments, report_errors
from src.errors import AgentInputError
from src.synthetic import VolSurfaceConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Compare the current synthetic vol surface with the market.")
    add_market_arguments(parser)
    return parser.parse_args(argv)


def realism(args: argparse.Namespace) -> dict[str, Any]:
    """{"underlying", "date", "n", "mae_vol_points": {"global": x, "<band>": y, ...}}."""
    surface = VolSurfaceConfig.load(args.config)
    folder = harvest_dir_for(args.harvest_dir, args.underlying)
    day = args.date if args.date is not None else latest_date(folder)
    chain = load_harvested_chain(folder, day)
    liquid = chain[liquid_mask(chain, CalibrationConfig().filters)]
    if liquid.empty:
        raise AgentInputError(f"No option of {folder.name} on {day} passes the liquidity filters; nothing to compare.")
    multiplier = liquid["dte"].map(lambda dte: surface.multiplier_for_dte(int(dte)))
    gap = (liquid["market_iv"] - liquid["synthetic_iv"] * multiplier).abs() * 100.0
    mae = {"global": round(float(gap.mean()), 4)}
    for name, band in surface.bands.items():
        in_band = gap[(liquid["dte"] >= band.min_dte) & (liquid["dte"] <= band.max_dte)]
        if len(in_band):
            mae[name] = round(float(in_band.mean()), 4)
    return {"underlying": folder.name, "date": str(day), "n": len(liquid), "mae_vol_points": mae}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> None:
        report = realism(args)
        print(
            f"Realism of {args.config} for {report['underlying']} on {report['date']} ({report['n']} liquid options):"
        )
        for name, value in report["mae_vol_points"].items():
            print(f"  {name:<8} MAE {value:.2f} vol points")

    return report_errors(run)


if __name__ == "__main__":
    raise SystemExit(main())
