"""Plugins: a third-party package found through its entry point, chosen by name from TOML."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from calibration_policy import (
    CalibrationPolicyError,
    CalibrationRun,
    CalibrationUpdatePolicy,
    PolicyError,
    Rule,
    RuleVerdict,
    Smoother,
    get_plugin_manager,
    get_smoothed_multipliers,
    hookimpl,
    plugins,
    should_apply_update,
)

NOW = datetime(2025, 12, 24, 15, 30, tzinfo=UTC)
OK = {"sample_size": 412, "vega_sum": 12400.0}

PLUGIN_MODULE = "cp_thirdparty_plugin"
PLUGIN_SOURCE = textwrap.dedent(
    '''
    """A third-party calibration_policy plugin, written as its author would."""
    from pydantic import BaseModel, ConfigDict

    from calibration_policy import Rule, RuleVerdict, Smoother, hookimpl


    class TrimOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        keep_last: int = 2


    def last_value(times, values, options):
        return float(values[-1])


    def mean_of_last(times, values, options):
        return float(values[-options.keep_last:].mean())


    def calm_market(ctx):
        vix = ctx.evidence.get("vix")
        if vix is None or vix <= 30:
            return RuleVerdict("calm_market", True, f"market calm (VIX {vix})", {"vix": vix})
        return RuleVerdict("calm_market", False, f"market too volatile (VIX {vix}, maximum 30)", {"vix": vix},
                           needs="wait for VIX to fall below 30")


    @hookimpl
    def register_smoothers(register):
        register(Smoother("last_value", last_value, "Last value", "The newest run alone."))
        register(Smoother("mean_of_last", mean_of_last, "Mean of the last runs", options=TrimOptions))


    @hookimpl
    def register_rules(register):
        register(Rule("calm_market", calm_market, "Calm market", "VIX at most 30."))
    '''
)


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, fresh_plugins):
    """Install the plugin like pip would: a module plus a dist-info with an entry point."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    dist = site / "cp_thirdparty_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cp-thirdparty-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(f"[calibration_policy]\nthirdparty = {PLUGIN_MODULE}\n", encoding="utf-8")
    (dist / "RECORD").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    plugins.reset_plugin_manager()
    yield site
    sys.modules.pop(PLUGIN_MODULE, None)
    plugins.reset_plugin_manager()


def run_at(days_ago: float, value: float, run_id: str) -> CalibrationRun:
    return CalibrationRun(
        run_id=run_id, timestamp=NOW - timedelta(days=days_ago), underlying="SPY", source="live",
        recommended_iv_multiplier={"global": value}, sample_size=412, vega_sum=12400.0,
    )  # fmt: skip


def write_policy(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_entry_point_plugin_smoother_and_rule_chosen_from_toml(installed_plugin, tmp_path):
    assert get_plugin_manager().has_plugin("thirdparty")
    policy = CalibrationUpdatePolicy.from_toml(
        write_policy(
            tmp_path / "p.toml",
            """
        smoothing = "last_value"
        rules = ["min_sample_size", "calm_market", "min_delta"]
    """,
        )
    )
    history = [run_at(3, 1.30, "a"), run_at(1, 1.20, "b")]
    current = run_at(0, 1.11, "c")
    smoothed = get_smoothed_multipliers(history, current, policy)
    assert smoothed == {"global": 1.11}  # the plugin's output, not an average
    decision = should_apply_update({"global": 1.05}, smoothed, policy, {**OK, "vix": 18})
    assert decision.apply
    assert "market calm (VIX 18)" in decision.reason
    assert [v.code for v in decision.verdicts] == ["min_sample_size", "calm_market", "min_delta"]
    blocked = should_apply_update({"global": 1.05}, smoothed, policy, {**OK, "vix": 45})
    assert not blocked.apply
    assert blocked.reason == "Not applied: market too volatile (VIX 45, maximum 30)"
    (verdict,) = [v for v in blocked.verdicts if v.code == "calm_market"]
    assert verdict.needs == "wait for VIX to fall below 30"


def test_plugin_smoother_options_are_validated_by_its_own_model(installed_plugin, tmp_path):
    policy = CalibrationUpdatePolicy.from_toml(
        write_policy(
            tmp_path / "p.toml",
            """
        smoothing = "mean_of_last"
        [smoothing_options]
        keep_last = 3
    """,
        )
    )
    history = [run_at(4, 2.0, "a"), run_at(3, 1.0, "b"), run_at(2, 1.1, "c")]
    assert get_smoothed_multipliers(history, run_at(0, 1.2, "d"), policy)["global"] == pytest.approx(1.1)
    with pytest.raises(PolicyError, match="smoothing_options for mean_of_last"):
        CalibrationUpdatePolicy(smoothing="mean_of_last", smoothing_options={"keep_first": 3})


def test_unknown_names_list_the_plugins_names_too(installed_plugin):
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy(smoothing="kalman")
    known = str(info.value).split("Known names: ")[1]
    for name in ("ewma", "last_value", "mean_of_last", "rolling_median"):
        assert name in known
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy(rules=["calm_markets"])
    assert "calm_market" in str(info.value) and "min_delta" in str(info.value)


def test_explain_names_a_plugin_strategy_by_its_label(installed_plugin):
    assert "using “Last value” and" in CalibrationUpdatePolicy(smoothing="last_value").explain()


def test_without_the_plugin_its_names_are_unknown(fresh_plugins):
    with pytest.raises(PolicyError, match="Unknown smoothing strategy 'last_value'"):
        CalibrationUpdatePolicy(smoothing="last_value")


# -- plugins registered in process ---------------------------------------------------------


class BrokenPlugin:
    @hookimpl
    def register_smoothers(self, register):
        register(Smoother("always_nan", lambda times, values, options: math.nan))

    @hookimpl
    def register_rules(self, register):
        register(Rule("returns_text", lambda ctx: "looks fine to me"))


@pytest.fixture
def broken_plugin(fresh_plugins):
    get_plugin_manager().register(BrokenPlugin(), name="broken")
    yield


def test_a_smoother_returning_nan_is_an_error_naming_it(broken_plugin):
    policy = CalibrationUpdatePolicy(smoothing="always_nan")
    with pytest.raises(CalibrationPolicyError, match="'always_nan' returned nan for global"):
        get_smoothed_multipliers([], run_at(0, 1.0, "x"), policy)


def test_a_rule_returning_the_wrong_type_is_an_error_naming_it(broken_plugin):
    policy = CalibrationUpdatePolicy(rules=("returns_text",))
    with pytest.raises(CalibrationPolicyError, match="Rule 'returns_text' returned str, not a RuleVerdict"):
        should_apply_update({"global": 1.0}, {"global": 1.1}, policy, OK)


def test_registering_with_an_empty_name_is_refused(fresh_plugins):
    class Nameless:
        @hookimpl
        def register_rules(self, register):
            register(Rule("", lambda ctx: None))

    get_plugin_manager().register(Nameless(), name="nameless")
    with pytest.raises(PolicyError, match="empty or non-text name"):
        plugins.get_rule("calm_market")


def test_default_plugins_are_ordinary_plugins():
    pm = get_plugin_manager()
    for module in ("calibration_policy.default_plugins.smoothers", "calibration_policy.default_plugins.rules"):
        assert pm.has_plugin(module)
    assert {"ewma", "rolling_median"} <= set(plugins.smoothers())
    assert {"min_sample_size", "min_vega_sum", "min_delta", "max_step", "bounds"} <= set(plugins.rules())


# -- the core stays light --------------------------------------------------------------------


def test_importing_the_core_does_not_import_ui_or_data_libraries():
    code = textwrap.dedent(
        """
        import json, sys
        import calibration_policy
        from calibration_policy import CalibrationUpdatePolicy
        CalibrationUpdatePolicy()  # building a policy loads the plugins, still nothing heavy
        heavy = ["fastapi", "jinja2", "pandas", "pyarrow", "starlette", "uvicorn"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_core_never_imports_the_ui():
    """The UI reaches the core only as an installed plugin (its `serve` command); never the reverse."""
    import calibration_policy

    core = Path(calibration_policy.__file__).parent
    offenders = [
        str(path.relative_to(core))
        for path in core.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+calibration_policy_ui", path.read_text(), re.M)
    ]
    assert offenders == []


# -- registration: typed records, duplicates, failures, options ------------------------------------


def _rule_plugin(name: str, rule_name: str, *, replaces: bool = False, raises: bool = False):
    class Plugin:
        @hookimpl
        def register_rules(self, register):
            if raises:
                raise RuntimeError("database not reachable")
            register(
                Rule(rule_name, lambda ctx: RuleVerdict(rule_name, True, f"{name} says yes", {}), replaces=replaces)
            )

    get_plugin_manager().register(Plugin(), name=name)


def test_a_taken_name_is_refused_naming_both_plugins(fresh_plugins):
    _rule_plugin("desk_a", "calm_market")
    _rule_plugin("desk_b", "calm_market")
    with pytest.raises(PolicyError, match="registered by both desk_a .* and desk_b"):
        plugins.get_rule("calm_market")
    assert plugins.get_rule("min_delta").name == "min_delta"  # the others keep working


def test_a_plugin_that_says_replaces_takes_the_name(fresh_plugins):
    _rule_plugin("stricter", "min_sample_size", replaces=True)
    verdict = should_apply_update(
        {"global": 1.0}, {"global": 1.1}, CalibrationUpdatePolicy(rules=("min_sample_size",)), OK
    )
    assert verdict.verdicts[0].text == "stricter says yes"


def test_a_plugin_raising_in_a_hook_is_named_and_the_others_keep_working(fresh_plugins, caplog):
    _rule_plugin("flaky", "calm_market", raises=True)
    decision = should_apply_update({"global": 1.0}, {"global": 1.1}, CalibrationUpdatePolicy(), OK)
    assert decision.apply
    assert (
        "Plugin flaky (registered in process) failed in register_rules: RuntimeError: database not reachable"
        in caplog.text
    )
    with pytest.raises(PolicyError, match="Unknown rule 'calm_market'.*failed in register_rules"):
        CalibrationUpdatePolicy(rules=("calm_market",))


def test_registering_a_bare_function_says_what_to_register(fresh_plugins):
    class OldStyle:
        @hookimpl
        def register_smoothers(self, register):
            register("mean", lambda times, values, options: 0.0)

    get_plugin_manager().register(OldStyle(), name="old_style")
    with pytest.raises(PolicyError, match=r"old_style .* several arguments; .*register\(Smoother\(name="):
        plugins.get_smoother("mean")


class CooldownOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    days: pydantic.PositiveInt = 3


@pytest.fixture
def rule_with_options(fresh_plugins):
    class Plugin:
        @hookimpl
        def register_rules(self, register):
            register(
                Rule(
                    "cooldown",
                    lambda ctx: RuleVerdict("cooldown", True, f"cooldown {ctx.options.days} days", {}),
                    "Cooldown",
                    "No apply within N days of the last one.",
                    options=CooldownOptions,
                )
            )

    get_plugin_manager().register(Plugin(), name="cooldown_plugin")


def test_a_rule_gets_its_options_from_the_policy(rule_with_options, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('rules = ["min_delta", "cooldown"]\n[rule_options.cooldown]\ndays = 5\n', encoding="utf-8")
    decision = should_apply_update({"global": 1.0}, {"global": 1.1}, CalibrationUpdatePolicy.from_toml(path), OK)
    assert "cooldown 5 days" in [v.text for v in decision.verdicts]
    default = should_apply_update({"global": 1.0}, {"global": 1.1}, CalibrationUpdatePolicy(rules=("cooldown",)), OK)
    assert default.verdicts[0].text == "cooldown 3 days"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cooldown": {"dayz": 5}}, "rule_options for cooldown: dayz is not an option of the rule “Cooldown”"),
        ({"cooldown": {"days": -1}}, "rule_options for cooldown: days must be greater than 0"),
        ({"min_delta": {"x": 1}}, "rule 'min_delta' takes no options"),
        ({"max_stepp": {}}, "rule_options names 'max_stepp', which is not in rules"),
    ],
)
def test_bad_rule_options_fail_when_the_policy_loads(rule_with_options, options, message):
    with pytest.raises(PolicyError, match=re.escape(message)):
        CalibrationUpdatePolicy(rules=("min_delta", "cooldown"), rule_options=options)


def test_installed_plugins_lists_each_with_its_package_and_names(rule_with_options):
    listed = {info.name: info for info in plugins.installed_plugins()}
    weights = listed["calibration_policy.default_plugins.scoring_weights"]
    assert weights.package == "calibration-policy (built-in)"
    assert weights.registers["domains"] == ("scoring_weights",)
    assert listed["cooldown_plugin"].registers == {"rules": ("cooldown",)}
    assert "register_rules" in listed["cooldown_plugin"].hooks


def test_explain_tells_a_plugin_rule_in_its_own_words_with_its_options(rule_with_options):
    policy = CalibrationUpdatePolicy(rules=("min_delta", "cooldown"), rule_options={"cooldown": {"days": 5}})
    assert policy.explain().endswith('It also checks "Cooldown": No apply within N days of the last one (days 5).')
