"""The ``venue-fit`` source: each venue's markup fitted from a day's fills.

This package's fit is a stand-in with the shape of a real one: a venue's markup drifts around its usual
level from day to day, and the number of fills (and so the notional) varies with the day, so the same
date always gives the same result.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from calibration_policy.plugin import InvalidRunError

from .domain import SOURCE_NAME

USUAL_BP = {"global": 1.40, "nyse": 1.10, "arca": 1.60, "bzx": 1.85}
NOTIONAL_PER_FILL_USD = 25_000


class VenueFitSource:
    name = SOURCE_NAME
    label = "Venue fit"
    description = "each venue's markup fitted from the day's fills"

    def underlyings(self) -> list[str]:
        return ["SPY"]

    def calibrate(self, underlying: str, day: date | None = None) -> dict[str, Any]:
        if underlying != "SPY":
            raise InvalidRunError(f"The venue-fit source quotes SPY only, not {underlying!r:.40}.")
        day = day or date.today()
        k = day.toordinal()
        fills = 600 + (k % 7) * 60
        return {
            "markups": {
                venue: round(usual + 0.04 * math.sin(k / 3 + i) + 0.002 * (k % 30), 4)
                for i, (venue, usual) in enumerate(USUAL_BP.items())
            },
            "fills": fills,
            "notional_usd": float(fills * NOTIONAL_PER_FILL_USD),
        }
