"""Auto mode's error budget for one weights file: how many looks it has spent, and what is left.

Auto mode runs again and again (every ``min_trades_between`` new trades). Each look that could apply
new weights unattended is a test, and a test at level 5 % repeated 13 times lets noise through far
more often than 5 % (20 of 150 noise streams did, in the review of issue 25). So the stream's budget,
``stream_alpha`` (5 %), is spent across looks: look *k* may apply only when the permutation p-value
is at most ``stream_alpha / max_looks`` (Bonferroni; never more than what is left). The union bound
then keeps the chance that noise is *ever* applied on its own at most ``stream_alpha``, whatever the
looks have in common (they share most of their trades). A look is spent when it is recorded, before
anything is measured, whatever the trades then say, so the levels do not depend on the outcomes.

The ledger lives in the runs auto mode records anyway (each look's run carries ``auto_look``), in
whichever store keeps them, so a restart or a second machine reads the same looks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from calibration_policy.stores import open_store

LOOK_KEY = "auto_look"
_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2261, 12, 31, tzinfo=UTC))


@dataclass(frozen=True)
class Budget:
    """One weights file's stream: looks used and the share of ``alpha`` they spent."""

    target: str
    alpha: float
    max_looks: int
    looks: int
    spent: float

    @property
    def left(self) -> float:
        return max(0.0, self.alpha - self.spent)

    @property
    def next_level(self) -> float:
        """The p-value the next look must reach; 0 once the budget is spent."""
        if self.looks >= self.max_looks:
            return 0.0
        level = min(self.alpha / self.max_looks, self.left)
        return level if level > self.alpha * 1e-9 else 0.0

    @property
    def spent_out(self) -> bool:
        return self.next_level == 0.0

    def look(self) -> dict[str, Any]:
        """The record of the next look, kept with its run."""
        return {
            "target": self.target,
            "number": self.looks + 1,
            "level": self.next_level,
            "alpha": self.alpha,
            "max_looks": self.max_looks,
        }

    def text(self) -> str:
        """``4 of 13 looks used; 3.5 % of the 5 % budget left``."""
        return (
            f"{self.looks:,} of {self.max_looks:,} looks used; {self.left * 100:.1f} % of the "
            f"{self.alpha * 100:g} % budget left"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "alpha": self.alpha,
            "max_looks": self.max_looks,
            "looks": self.looks,
            "spent": self.spent,
            "left": self.left,
            "next_level": self.next_level,
            "text": self.text(),
        }


def read_budget(
    history_dir: str | os.PathLike[str] | None, underlying: str, target: str, alpha: float, max_looks: int
) -> Budget:
    """The stream's budget, counted from the looks recorded with its runs."""
    looks, spent = 0, 0.0
    for run in open_store(history_dir).between(underlying, *_EVER):
        look = ((run.model_extra or {}).get("analysis") or {}).get(LOOK_KEY)
        if isinstance(look, dict) and look.get("target") == target:
            looks += 1
            spent += float(look.get("level") or 0.0)
    return Budget(target, alpha, max_looks, looks, spent)


def budget_for(settings: Any, history_dir: str | os.PathLike[str] | None, underlying: str, target: str) -> Budget:
    """:func:`read_budget` with auto mode's settings (an ``AutoSettings``)."""
    return read_budget(history_dir, underlying, target, settings.stream_alpha, settings.max_looks)
