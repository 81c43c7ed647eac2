"""A domain is a kind of governed parameter set: IV multipliers, scoring weights, a plugin's.

It knows its scopes, how to read a host's calibration result, and what a valid value set is,
so smoothing, rules, history and review stay the same for every domain.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRunError


@dataclass(frozen=True)
class Extracted:
    """What the policy needs from one calibration result."""

    recommended: dict[str, float]
    sample_size: int
    vega_sum: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Domain(ABC):
    """Base class for domains; subclasses override what differs."""

    name: str = ""
    title: str = ""
    parameter_label: str = "value"
    parameter_label_plural: str = "values"
    sample_unit: str = "samples"
    value_unit: str = ""  # the values' unit where they have one ("bp", "USD"), shown beside the parameter label
    # What a run's second evidence figure (stored as ``vega_sum``) measures, as a sentence says it ("notional"),
    # and its unit where it has one ("USD"): the checklist, reasons, rule sentence, explain and the lab form say it.
    evidence_label: str = "total vega"
    evidence_unit: str = "vega"
    sources: tuple[str, ...] = ()
    # True when a complete value set must add up to 1 (factor weights): every surface then shows a set rounded
    # as a whole (humanize.fmt_value_set), so the figures on screen add up to 1 too.
    sums_to_one: bool = False
    # The safety net when a policy sets no ``bounds``: a value outside it is a broken calibration.
    default_bounds: tuple[float, float] | None = None
    # The domain's own words, each explained in a sentence for a reader who is not a quant: the
    # panel lists them under "What the words on this page mean", beside the words every domain shares.
    glossary: tuple[tuple[str, str], ...] = ()

    @abstractmethod
    def extract(self, result: Mapping[str, Any]) -> Extracted:
        """Read the recommended values and the evidence out of a host's calibration result."""

    def value_name(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        """How a message names one value, in the domain's words: "NYSE Arca spread markup", "Global IV multiplier"."""
        return f"{self.scope_label(scope, details)} {self.parameter_label}"

    def check_number(self, scope: str, value: Any, details: Mapping[str, Any] | None = None) -> float:
        """``value`` as a float when it is a finite number (never text that looks like one), else an error
        naming it in the domain's words."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRunError(f"The {self.value_name(scope, details)} must be a number, not {value!r:.40}.")
        if not math.isfinite(value):
            word = "NaN" if math.isnan(value) else "infinite"
            raise InvalidRunError(f"The {self.value_name(scope, details)} is {word}; it must be a finite number.")
        return float(value)

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Check a complete value set before it can go live; the error names the bad value."""
        checked = {str(scope): self.check_number(str(scope), value) for scope, value in values.items()}
        if not checked:
            raise InvalidRunError(f"No {self.parameter_label_plural} were given.")
        return checked

    def normalize(self, values: Mapping[str, float]) -> dict[str, float]:
        """Repair what smoothing may break in a value set (weights must sum to 1); as is by default."""
        return dict(values)

    def score(self, values: Mapping[str, float], run: Any) -> float | None:
        """How badly ``values`` fit one calibration run, lower is better; the watch after apply compares the
        new live values with the ones they replaced on the same run. Default: the mean tracking error
        |value − the run's recommended value| over the scopes both have, times √(sample size), so a run
        with more evidence weighs more (the error of a recommendation shrinks like 1/√n). None: no scope
        in common, nothing to say. A domain with better evidence (the weights' closed trades) overrides it,
        or overrides :meth:`score_parts` (the vol surface's bands): the score is then their mean."""
        parts = self.score_parts(values, run)
        return None if parts is None else sum(parts.values()) / len(parts)

    def score_parts(self, values: Mapping[str, float], run: Any) -> dict[str, float] | None:
        """:meth:`score` split into parts the watch can pair one by one (its per-scope test pools every run's
        parts), lower is better. Default: each scope's tracking error |value − the run's recommended value|
        times √(sample size), over the scopes both have (their mean is the default score). A domain that
        overrides :meth:`score` but not this gets its whole score as one part (so a domain overrides at least
        one of the two). None: nothing to say."""
        if type(self).score is not Domain.score:
            whole = self.score(values, run)
            return None if whole is None else {"all": whole}
        return tracking_error_parts(values, run)

    def value_heading(self) -> str:
        """The values' column heading in the domain's words, with their unit: "IV multiplier", "Spread markup (bp)"."""
        label = self.parameter_label[:1].upper() + self.parameter_label[1:]
        return label + (f" ({self.value_unit})" if self.value_unit else "")

    def evidence_amount(self, amount: float) -> str:
        """ "12,400" for total vega, "10,000,000 USD" for a notional: the figure with its unit where the label
        does not already say it."""
        from .humanize import fmt_count

        unit = self.evidence_unit
        return fmt_count(amount) + (f" {unit}" if unit and unit not in self.evidence_label.split() else "")

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        return scope.replace("_", " ").capitalize()


def tracking_error_parts(values: Mapping[str, float], run: Any) -> dict[str, float] | None:
    """Each scope's |value − the run's recommended value| × √(sample size), over the scopes both have; None: none."""
    recommended = run.recommended_iv_multiplier
    weight = math.sqrt(max(int(run.sample_size), 1))
    parts = {
        scope: abs(float(values[scope]) - float(recommended[scope])) * weight
        for scope in recommended
        if scope in values
    }
    return parts or None
