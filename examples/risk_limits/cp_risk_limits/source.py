"""The ``realized-vol`` source: each desk's limit from its realized volatility and its risk budget.

    limit = risk budget / annualized realized volatility, rounded down to 100,000

The volatility is the sample standard deviation of the desk's daily returns over the last
``window_days`` trading days up to the calibration date, times √252. The returns and the budgets
ship with the package (``data/daily_returns.csv``, ``data/risk_budgets.json``), so a calibration
of a given date gives the same numbers on every machine. A host with its own returns passes their
paths to :class:`RealizedVolSource` and registers that instead.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from calibration_policy.plugin import InvalidRunError

from .domain import SOURCE_NAME, money

BOOK = "FIRM"  # the one book the bundled returns belong to (the run's "underlying")
WINDOW_DAYS = 60
TRADING_DAYS_PER_YEAR = 252
LIMIT_STEP = 100_000.0


def _bundled(name: str) -> Any:
    return resources.files("cp_risk_limits").joinpath("data", name)


@dataclass(frozen=True)
class Returns:
    """Daily returns by desk, oldest first."""

    days: tuple[date, ...]
    by_desk: dict[str, tuple[float, ...]]


def load_returns(path: str | os.PathLike[str] | None = None) -> Returns:
    """The returns table: a ``date`` column, then one column of daily returns per desk."""
    where = str(path) if path else "the bundled daily_returns.csv"
    try:
        text = (
            Path(path).read_text(encoding="utf-8")
            if path
            else _bundled("daily_returns.csv").read_text(encoding="utf-8")
        )
    except OSError as error:
        raise InvalidRunError(f"The returns file {where} cannot be read: {error.strerror or error}.") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or rows[0][:1] != ["date"] or len(rows[0]) < 2:
        raise InvalidRunError(f"The returns file {where} must start with a header: date, then one column per desk.")
    desks = rows[0][1:]
    days: list[date] = []
    columns: list[list[float]] = [[] for _ in desks]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise InvalidRunError(f"Line {line} of {where} has {len(row)} fields, not {len(rows[0])}.")
        try:
            day = date.fromisoformat(row[0])
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            raise InvalidRunError(
                f"Line {line} of {where} is not a date and numbers: {','.join(row)[:80]!r}."
            ) from None
        if days and day <= days[-1]:
            raise InvalidRunError(
                f"Line {line} of {where}: {day} does not come after {days[-1]}; sort the file by date."
            )
        if not all(math.isfinite(v) for v in values):
            raise InvalidRunError(f"Line {line} of {where} holds a return that is not a finite number.")
        days.append(day)
        for column, value in zip(columns, values):
            column.append(value)
    return Returns(tuple(days), {desk: tuple(column) for desk, column in zip(desks, columns)})


def load_budgets(path: str | os.PathLike[str] | None = None) -> tuple[str, dict[str, float]]:
    """The currency and each desk's risk budget (its annual one-standard-deviation loss)."""
    where = str(path) if path else "the bundled risk_budgets.json"
    try:
        raw = (
            Path(path).read_text(encoding="utf-8")
            if path
            else _bundled("risk_budgets.json").read_text(encoding="utf-8")
        )
        data = json.loads(raw)
    except OSError as error:
        raise InvalidRunError(f"The budgets file {where} cannot be read: {error.strerror or error}.") from None
    except ValueError as error:
        raise InvalidRunError(f"The budgets file {where} is not valid JSON ({error}).") from None
    budgets = data.get("risk_budget") if isinstance(data, dict) else None
    if not isinstance(budgets, dict) or not budgets:
        raise InvalidRunError(f"The budgets file {where} has no risk_budget table (desk → amount).")
    for desk, amount in budgets.items():
        if (
            isinstance(amount, bool)
            or not isinstance(amount, (int, float))
            or not amount > 0
            or not math.isfinite(amount)
        ):
            raise InvalidRunError(f"The {desk} risk budget in {where} must be a positive amount, not {amount!r:.40}.")
    return str(data.get("currency") or "USD"), {str(desk): float(amount) for desk, amount in budgets.items()}


class RealizedVolSource:
    """Calibrates the position limits of the ``FIRM`` book for a date from the bundled returns."""

    name = SOURCE_NAME
    label = "Realized volatility"
    description = "limit = risk budget / annualized realized volatility of the last 60 trading days"

    def __init__(
        self,
        returns_path: str | os.PathLike[str] | None = None,
        budgets_path: str | os.PathLike[str] | None = None,
        window_days: int = WINDOW_DAYS,
    ) -> None:
        if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 2:
            raise InvalidRunError(f"window_days must be a whole number of at least 2, not {window_days!r:.40}.")
        self.returns_path, self.budgets_path, self.window_days = returns_path, budgets_path, window_days

    def underlyings(self) -> list[str]:
        return [BOOK]

    def dates(self, underlying: str) -> list[date]:
        """Every date with a full window of returns behind it (for a replay of the year)."""
        self._check_book(underlying)
        return list(load_returns(self.returns_path).days[self.window_days - 1 :])

    def _check_book(self, underlying: str) -> None:
        if not isinstance(underlying, str) or underlying.strip().upper() != BOOK:
            raise InvalidRunError(
                f"The realized-vol source holds returns for the {BOOK} book only, not {underlying!r:.40}."
            )

    def calibrate(self, underlying: str, day: date | None = None) -> dict[str, Any]:
        """The result :meth:`RiskLimitsDomain.extract` reads: per desk its vol, budget and recommended limit."""
        self._check_book(underlying)
        returns = load_returns(self.returns_path)
        currency, budgets = load_budgets(self.budgets_path)
        day = day or returns.days[-1]
        if day > returns.days[-1]:
            raise InvalidRunError(f"The returns end on {returns.days[-1]}; there is nothing to calibrate on {day}.")
        upto = sum(1 for d in returns.days if d <= day)
        start = max(0, upto - self.window_days)
        if upto - start < 2:
            found = upto - start
            raise InvalidRunError(
                f"Only {found} day{'' if found == 1 else 's'} of returns up to {day} (they start on "
                f"{returns.days[0]}); volatility needs at least 2."
            )
        missing = sorted(set(budgets) - set(returns.by_desk))
        if missing:
            raise InvalidRunError(f"The {missing[0]} desk has a risk budget but no returns column.")
        desks = {}
        for desk, budget in budgets.items():
            window = returns.by_desk[desk][start:upto]
            vol = statistics.stdev(window) * math.sqrt(TRADING_DAYS_PER_YEAR)
            if not vol > 0:
                raise InvalidRunError(
                    f"The {desk} desk's returns do not move between {returns.days[start]} and {day}; "
                    "a limit cannot be sized from zero volatility."
                )
            limit = math.floor(budget / vol / LIMIT_STEP) * LIMIT_STEP
            desks[desk] = {
                "realized_vol": round(vol, 6),
                "risk_budget": budget,
                "recommended_limit": max(limit, LIMIT_STEP),
                "n_days": upto - start,
                "text": f"{vol:.1%} annualized over {upto - start} days → limit {money(max(limit, LIMIT_STEP))} {currency}",
            }
        return {
            "book": BOOK,
            "as_of": day.isoformat(),
            "first_day": returns.days[start].isoformat(),
            "window_days": self.window_days,
            "n_days": upto - start,
            "currency": currency,
            "desks": desks,
            "config": {
                "window_days": self.window_days,
                "trading_days_per_year": TRADING_DAYS_PER_YEAR,
                "limit_step": LIMIT_STEP,
                "risk_budget": budgets,
            },
        }
