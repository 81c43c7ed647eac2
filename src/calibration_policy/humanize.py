"""Numbers as a trader reads them: few decimals, thousands separators, never a misleading tie."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any

HUGE = 1e15  # past this, digits before the point mean nothing to a reader: 1.7e+308, not 309 digits


def fmt_num(value: float, decimals: int = 2) -> str:
    """``1.0800`` → ``1.08``; keeps as many decimals as asked, drops trailing zeros past two.

    ``-0.0`` reads ``0.00``; a number of 1e15 or more reads in scientific notation (``1.7e+308``)
    with ``decimals + 2`` significant digits; NaN and infinity read as words.
    """
    if not math.isfinite(value):
        return "not a number" if math.isnan(value) else ("infinity" if value > 0 else "minus infinity")
    if abs(value) >= HUGE:
        return f"{value:.{decimals + 2}g}"
    value = round(value, decimals) + 0.0  # what rounds to zero (-0.0, -1e-320) reads 0.00, not -0.00
    text = f"{value:,.{decimals}f}"
    if "." in text and decimals > 2:
        text = text.rstrip("0")
        if len(text.split(".")[1]) < 2:
            text = f"{value:,.2f}"
    return text


def fmt_value(value: float | None, decimals: int = 3) -> str:
    """A parameter value with a fixed number of decimals (``1.043``, ``1.080``) so columns line up; a dash for none.

    ``-0.0`` (or ``-1e-320``) shows as ``0.000``; a value of 1e15 or more (a broken calibration) as
    ``1.7e+308``, never as 309 digits.
    """
    if value is None:
        return "–"
    if not math.isfinite(value):
        return fmt_num(value)
    if abs(value) >= HUGE:
        return f"{value:.{decimals}g}"
    return f"{round(value, decimals) + 0.0:,.{decimals}f}"  # + 0.0: what rounds to zero reads 0.000, not -0.000


def fmt_value_set(
    values: Mapping[str, float | None], decimals: int = 3, *, sums_to_one: bool = False
) -> dict[str, str]:
    """Every value of one set (a live config, a run's recommendation, a suggestion) as :func:`fmt_value` shows it.

    ``sums_to_one``: the domain's values must add up to 1 (``Domain.sums_to_one``: the scoring weights). Each
    value rounded alone could then read as a set that does not: 0.2496, 0.2496, 0.2496 and 0.2512 at three
    decimals read 0.250, 0.250, 0.250, 0.251, which a reader adds up to 1.001. So the set is rounded as a whole
    by largest remainder: every value is cut to ``decimals``, and the units the cuts lost go one each to the
    values that lost most (ties: the first listed), so the figures add up exactly to the set's own sum rounded,
    1 for a set that sums to 1 (0.250, 0.250, 0.249, 0.251). A set with a missing or non-finite value is shown
    value by value: there is no sum to keep.
    """
    numbers = list(values.values())
    if not sums_to_one or not all(v is not None and math.isfinite(v) and abs(v) < HUGE for v in numbers):
        return {scope: fmt_value(value, decimals) for scope, value in values.items()}
    scale = Decimal(10) ** decimals
    exact = {scope: Decimal(repr(value)) * scale for scope, value in values.items()}  # repr: the float as written
    units = {scope: amount.to_integral_value(ROUND_FLOOR) for scope, amount in exact.items()}
    missing = int(sum(exact.values(), Decimal(0)).to_integral_value() - sum(units.values()))
    for scope in sorted(exact, key=lambda scope: units[scope] - exact[scope])[:missing]:  # the largest remainders
        units[scope] += 1
    return {scope: fmt_value(float(amount / scale), decimals) for scope, amount in units.items()}


def fmt_count(value: float) -> str:
    """``12400.0`` → ``12,400``."""
    if not math.isfinite(value) or abs(value) >= HUGE:
        return fmt_num(value, 1)
    return f"{value + 0.0:,.0f}"


def fmt_against(value: float, limit: float, decimals: int = 2) -> tuple[str, str]:
    """A value beside the limit it is measured against: the limit as it was set (0.015 reads 0.015, not 0.01),
    the value with as many decimals (and more wherever the two would otherwise print the same)."""
    places = next((p for p in range(decimals, 7) if math.isfinite(limit) and round(limit, p) == limit), 6)
    return fmt_pair(value, limit, places)


def fmt_pair(a: float, b: float, decimals: int = 2) -> tuple[str, str]:
    """Format two numbers with enough decimals that different values never print the same.

    Without this a change of 0.0299 against a threshold of 0.03 would read "0.03 < 0.03".
    """
    for places in range(decimals, 9):
        left, right = fmt_num(a, places), fmt_num(b, places)
        hides_change = (a != 0 and float(left.replace(",", "")) == 0) or (b != 0 and float(right.replace(",", "")) == 0)
        if (a == b or left != right) and not hides_change:
            return left, right
    return fmt_num(a, 9), fmt_num(b, 9)


def fmt_setting(value: Any) -> str:
    """A setting as its author wrote it: ``10000000.0`` → ``10,000,000``, ``0.015`` → ``0.015``, ``1e-05`` →
    ``0.00001`` (never ``1e+07``, never rounded away); text and flags as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) >= HUGE):
        return fmt_num(value)
    text = f"{Decimal(repr(value)):,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_settings(options: Any) -> str:
    """A plugin's options model as ``largest widening 0.5 bp, trim 1`` (empty for none): each field by its
    ``title`` when the plugin gave one (else its name, spaced), with its ``json_schema_extra`` unit."""
    if options is None:
        return ""
    fields = type(options).model_fields
    parts = []
    for key, value in options.model_dump().items():
        info = fields.get(key)
        name = info.title if info is not None and info.title else key.replace("_", " ")
        extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        unit = extra.get("unit")
        parts.append(f"{name} {fmt_setting(value)}" + (f" {unit}" if isinstance(unit, str) and unit else ""))
    return ", ".join(parts)
