"""cp-quote-spreads: quote-spread markups per venue, in basis points, governed by calibration-policy.

Written only against ``calibration_policy.plugin`` and installed through the ``calibration_policy`` entry
point. It registers the ``quote_spreads`` domain and its live file, the ``venue-fit`` source, the
``max_widen_bp`` rule and the ``trimmed_mean`` smoother.
"""

from __future__ import annotations

from calibration_policy.plugin import Rule, Smoother, TargetFactory, hookimpl

from .domain import DOMAIN_NAME, QuoteSpreadsDomain, spreads_target
from .rules import RULE_NAME, SMOOTHER_NAME, MaxWidenOptions, TrimOptions, max_widen_bp, trimmed_mean
from .source import VenueFitSource


@hookimpl
def register_domains(register):
    register(QuoteSpreadsDomain())


@hookimpl
def register_sources(register):
    register(VenueFitSource())


@hookimpl
def register_targets(register):
    register(TargetFactory(DOMAIN_NAME, spreads_target, "Markups file", "A flat JSON file of venue → markup in bp."))


@hookimpl
def register_rules(register):
    register(
        Rule(
            RULE_NAME,
            max_widen_bp,
            "Widening capped",
            "No venue's markup widens by more than max_widen_bp in one update without a person's approval.",
            options=MaxWidenOptions,
        )
    )


@hookimpl
def register_smoothers(register):
    register(
        Smoother(
            SMOOTHER_NAME,
            trimmed_mean,
            "Trimmed mean",
            "The mean of a venue's recent fits without the highest and the lowest.",
            options=TrimOptions,
        )
    )
