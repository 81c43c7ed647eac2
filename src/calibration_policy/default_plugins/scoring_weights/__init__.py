"""The ``scoring_weights`` plugin: the trade-scoring model's four weights as a governed domain.

Written against the public hooks only, like a third-party plugin: the domain and its live file
(:mod:`.domain`), the trades analysis (:mod:`.analysis`), the suggest / auto flow (:mod:`.flow`)
and the ``weights`` and ``as-of`` commands (:mod:`.commands`).
"""

from __future__ import annotations

from calibration_policy.hookspecs import hookimpl
from calibration_policy.specs import Rule, TargetFactory

from .domain import DOMAIN_NAME, ScoringWeightsDomain, weights_target


@hookimpl
def register_domains(register):
    register(ScoringWeightsDomain())


@hookimpl
def register_rules(register):
    from .gate import OutOfSampleOptions, out_of_sample_rule

    register(
        Rule(
            "out_of_sample",
            out_of_sample_rule,
            "Helps on unseen trades",
            "The suggested weights beat the live ones on later trades they were not fitted to "
            "(walk-forward, bootstrap interval and shuffled-outcome p-value).",
            options=OutOfSampleOptions,
        )
    )


@hookimpl
def register_targets(register):
    register(
        TargetFactory(DOMAIN_NAME, weights_target, "Scoring weights file", "A flat JSON file of the four weights.")
    )


@hookimpl
def register_commands(cli):
    from calibration_policy.cli import LazyGroup

    from .as_of import as_of

    # The weights commands (and pandas with them) load only when the line says `weights`.
    cli.add_command(
        LazyGroup(
            "weights",
            f"{__name__}.commands:weights",
            help="Scoring-model weights: analyse trades, suggest, review, roll back.",
        )
    )
    cli.add_command(as_of)


@hookimpl
def register_change_kinds(register):
    from calibration_policy.specs import ChangeType

    from .changes import WeightsAuto, WeightsSuggest

    register(ChangeType("weights_suggest", WeightsSuggest, "Suggest weights", "Analyse trades and leave a suggestion."))
    register(
        ChangeType(
            "weights_auto", WeightsAuto, "Weights auto mode", "Suggest, and apply within bounds when it clearly helps."
        )
    )
