"""The public API in tiers: what a host calls (``calibration_policy``) and what a plugin author uses
(``calibration_policy.plugin``); every name listed resolves, and the plugin module covers every hook's record."""

from __future__ import annotations

import calibration_policy
import calibration_policy.plugin as plugin
from calibration_policy import hookspecs


def test_every_public_name_resolves():
    for name in calibration_policy.__all__:
        assert getattr(calibration_policy, name) is not None, name
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None, name


def test_a_host_governs_and_reviews_through_the_top_level_names():
    for name in ("Target", "JsonFileTarget", "approve_suggestion", "modify_suggestion", "reject_suggestion"):
        assert name in calibration_policy.__all__
    assert {"roll_back", "status_report", "run_update", "force_apply"} <= set(calibration_policy.__all__)


def test_the_plugin_module_has_a_record_for_every_register_hook():
    records = {"register_smoothers": "Smoother", "register_rules": "Rule", "register_targets": "TargetFactory"}
    records |= {"register_stores": "StoreType", "register_domains": "Domain"}
    records |= {"register_change_kinds": "ChangeType", "register_deliverers": "Deliverer"}
    hooks = {name for name in dir(hookspecs) if name.startswith("register_") and name != "register_commands"}
    assert hooks <= set(records) | {"register_sources"}  # a source is any object with a name
    assert all(record in plugin.__all__ for record in records.values())
    assert {"hookimpl", "RuleVerdict", "RuleContext", "InvalidRunError"} <= set(plugin.__all__)
    assert plugin.JsonFileTarget is calibration_policy.JsonFileTarget


CHANGE_FUNCTIONS = (
    "run_update",
    "force_apply",
    "approve_suggestion",
    "modify_suggestion",
    "reject_suggestion",
    "roll_back",
    "propose_policy",
    "review_policy",
    "set_policy",
    "roll_back_policy",
)


def _change_functions():
    from calibration_policy.default_plugins.scoring_weights import flow

    return [getattr(calibration_policy, name) for name in CHANGE_FUNCTIONS] + [flow.suggest_weights, flow.run_auto]


def test_every_public_change_function_takes_a_context_and_at_most_six_parameters():
    """Who acts, from where and where the data lives travel in one Context, never as loose folders and names."""
    import inspect

    for function in _change_functions():
        parameters = inspect.signature(function).parameters
        assert 3 <= len(parameters) <= 6, (function.__name__, list(parameters))
        assert "context" in parameters, function.__name__
        loose = {"history_dir", "archive_dir", "suggestions_dir", "data_dir", "actor", "reviewer", "via"}
        assert not loose & set(parameters), (function.__name__, loose & set(parameters))
