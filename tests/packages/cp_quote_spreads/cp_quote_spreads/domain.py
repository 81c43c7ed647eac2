"""The ``quote_spreads`` domain: the markup, in basis points, a market maker adds to its quoted spread on each
venue (and one global markup for venues without their own), and the live file that holds them.

A markup is recalibrated from the day's fills: a venue where quotes were picked off needs a wider one. The
evidence of a run is how many fills it measured and their notional in US dollars.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from calibration_policy.plugin import Domain, Extracted, InvalidRunError, JsonFileTarget

DOMAIN_NAME = "quote_spreads"
SOURCE_NAME = "venue-fit"
VENUES = {"global": "Global", "nyse": "NYSE", "arca": "NYSE Arca", "bzx": "Cboe BZX"}


class QuoteSpreadsDomain(Domain):
    name = DOMAIN_NAME
    title = "Quote spread markups"
    parameter_label = "spread markup"
    parameter_label_plural = "spread markups"
    value_unit = "bp"
    sample_unit = "fills"
    evidence_label = "notional"
    evidence_unit = "USD"
    sources = (SOURCE_NAME,)
    # A markup outside 0–25 bp is a broken fit (a venue with a handful of fills), not a quoting decision.
    default_bounds = (0.0, 25.0)
    glossary = (
        ("Spread markup", "What is added to the quoted spread on a venue, in basis points (1 bp = 0.01%)."),
        ("Notional", "The traded value of the run's fills, in US dollars."),
    )

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        """Read a venue-fit result: ``markups`` per venue, the ``fills`` it measured and their ``notional_usd``."""
        markups = result.get("markups") if isinstance(result, Mapping) else None
        if not isinstance(markups, Mapping) or not markups:
            raise InvalidRunError("The venue-fit result has no markups table (venue → markup in bp).")
        fills, notional = result.get("fills"), result.get("notional_usd")
        if isinstance(fills, bool) or not isinstance(fills, int) or fills < 0:
            raise InvalidRunError(f"The venue-fit result's fills must be a whole number ≥ 0, not {fills!r:.40}.")
        recommended = {str(venue): self.check_number(str(venue), value) for venue, value in markups.items()}
        return Extracted(
            recommended=recommended,
            sample_size=fills,
            vega_sum=float(self.check_number("notional", notional)) if notional is not None else None,
        )

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        checked = super().validate(values)
        for venue, value in checked.items():
            if value < 0:
                raise InvalidRunError(f"The {self.value_name(venue)} is {value:g} bp; a markup cannot be negative.")
        return checked

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        return VENUES.get(scope, scope.upper())


def spreads_target(underlying: str | None = None, path: str | os.PathLike[str] | None = None) -> JsonFileTarget:
    """The live markups, a flat JSON ``{venue: bp}``; with no path, ``quote_spreads_<SYMBOL>.json`` here."""
    return JsonFileTarget(path or f"{DOMAIN_NAME}_{underlying}.json", name=DOMAIN_NAME)
