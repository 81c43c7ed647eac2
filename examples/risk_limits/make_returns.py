"""Regenerate ``cp_risk_limits/data/daily_returns.csv``: a year of synthetic daily returns per desk.

Seeded, so the file is the same on every machine. The regimes are chosen so the example has
something to govern: rates and FX stay calm all year, equities trade at 16% annualized volatility
until the end of October and at 40% from November on (a volatility spike), so a calibration in
December recommends cutting the equities limit by more than half.

    python examples/risk_limits/make_returns.py
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "cp_risk_limits" / "data" / "daily_returns.csv"
SEED = 20250101
SPIKE_FROM = date(2025, 11, 1)
ANNUAL_VOL = {"rates": (0.06, 0.06), "equities": (0.16, 0.40), "fx": (0.09, 0.10)}  # (before, from the spike)


def business_days(start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def main() -> None:
    rng = random.Random(SEED)
    lines = ["date," + ",".join(ANNUAL_VOL)]
    for day in business_days(date(2025, 1, 2), date(2025, 12, 31)):
        row = []
        for before, after in ANNUAL_VOL.values():
            daily = (after if day >= SPIKE_FROM else before) / math.sqrt(252)
            row.append(f"{rng.gauss(0.0, daily):.6f}")
        lines.append(f"{day.isoformat()}," + ",".join(row))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote {len(lines) - 1} days of returns to {OUT}")


if __name__ == "__main__":
    main()
