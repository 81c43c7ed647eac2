"""CalibrationUpdatePolicy: defaults, loading from TOML / env, strict validation, explain()."""

from __future__ import annotations

import math
from datetime import UTC
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, PolicyError, UnknownPluginError, should_apply_update

OK = {"sample_size": 412, "vega_sum": 12400.0}

TOML = """\
min_delta_global = 0.05
min_delta_band = 0.04
min_sample_size = 300
min_vega_sum = 8000.0
smoothing_window_days = 21
smoothing = "ewma"
max_step = 0.08
apply_scopes = "changed"

[band_min_delta]
weekly = 0.06

[smoothing_options]
half_life_days = 3.5

[bounds]
min = 0.5
max = 2.0
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "calibration_policy.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


def test_defaults_are_the_documented_ones():
    policy = CalibrationUpdatePolicy()
    assert policy.min_delta_global == 0.03
    assert policy.min_delta_band == 0.03
    assert policy.min_sample_size == 150
    assert policy.min_vega_sum == 5000.0
    assert policy.smoothing_window_days == 14
    assert policy.smoothing == "ewma"
    assert policy.apply_scopes == "all"
    assert policy.max_step is None and policy.bounds is None


def test_the_design_example_constructs():
    policy = CalibrationUpdatePolicy(
        min_delta_global=0.03,
        min_delta_band=0.03,
        min_sample_size=150,
        min_vega_sum=5000.0,
        smoothing_window_days=14,
        smoothing="rolling_median",
    )
    assert policy.smoothing == "rolling_median"


def _assert_file_values(policy: CalibrationUpdatePolicy) -> None:
    assert policy.min_delta_global == 0.05
    assert policy.min_delta_band == 0.04
    assert policy.band_min_delta == {"weekly": 0.06}
    assert policy.min_sample_size == 300
    assert policy.min_vega_sum == 8000.0
    assert policy.smoothing_window_days == 21
    assert policy.smoothing_options == {"half_life_days": 3.5}
    assert policy.max_step == 0.08
    assert (policy.bounds.min, policy.bounds.max) == (0.5, 2.0)
    assert policy.apply_scopes == "changed"
    assert policy.threshold_for("weekly") == 0.06
    assert policy.threshold_for("monthly") == 0.04
    assert policy.threshold_for("global") == 0.05


def test_from_toml_reads_every_setting(policy_file):
    _assert_file_values(CalibrationUpdatePolicy.from_toml(policy_file))


def test_from_toml_accepts_a_policy_table(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[policy]\nmin_delta_global = 0.07\n", encoding="utf-8")
    assert CalibrationUpdatePolicy.from_toml(path).min_delta_global == 0.07


def test_load_with_explicit_path(policy_file):
    _assert_file_values(CalibrationUpdatePolicy.load(policy_file))
    _assert_file_values(CalibrationUpdatePolicy.load(str(policy_file)))


def test_load_from_environment(policy_file, monkeypatch):
    monkeypatch.setenv("CALIBRATION_POLICY", str(policy_file))
    _assert_file_values(CalibrationUpdatePolicy.load())


def test_load_next_to_the_data(policy_file):
    _assert_file_values(CalibrationUpdatePolicy.load(data_dir=policy_file.parent))


def test_load_without_anything_gives_defaults(tmp_path):
    assert CalibrationUpdatePolicy.load(data_dir=tmp_path) == CalibrationUpdatePolicy()


def test_thresholds_from_the_file_drive_the_decision(policy_file, tmp_path):
    # 1.03 → 1.08 is a 0.05 change: applies under a 0.05 threshold (412 ≥ 300 options, 12,400 ≥ 8,000 vega).
    assert (
        should_apply_update({"global": 1.03}, {"global": 1.08}, CalibrationUpdatePolicy.load(policy_file), OK).apply
        is True
    )
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(TOML.replace("min_delta_global = 0.05", "min_delta_global = 0.06"), encoding="utf-8")
    decision = should_apply_update({"global": 1.03}, {"global": 1.08}, CalibrationUpdatePolicy.load(stricter), OK)
    assert not decision.apply
    assert "Global 0.05 < 0.06" in decision.reason
    looser = tmp_path / "looser.toml"
    looser.write_text(TOML.replace("min_delta_global = 0.05", "min_delta_global = 0.02"), encoding="utf-8")
    decision = should_apply_update({"global": 1.03}, {"global": 1.08}, CalibrationUpdatePolicy.load(looser), OK)
    assert decision.apply
    assert "Global 1.03 → 1.08 (change 0.05, threshold 0.02)" in decision.reason


def test_the_policy_is_immutable():
    policy = CalibrationUpdatePolicy()
    with pytest.raises(ValueError):
        policy.min_delta_global = 0.0  # type: ignore[misc]


# -- strict validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"smoothing": "ewmaa"}, ["'ewmaa'", "Known names: ", "ewma", "rolling_median"]),
        (
            {"rules": ["min_delta", "min_deltaa"]},
            ["'min_deltaa'", "Known names: ", "bounds", "max_step", "min_sample_size", "min_vega_sum"],
        ),
        ({"rules": ["min_delta", "min_delta"]}, ["rules", "twice"]),
        ({"min_delta_global": -0.01}, ["min_delta_global", "greater than or equal to 0"]),
        ({"min_delta_band": -1}, ["min_delta_band", "greater than or equal to 0"]),
        ({"band_min_delta": {"weekly": -0.1}}, ["band_min_delta.weekly"]),
        ({"min_sample_size": -5}, ["min_sample_size"]),
        ({"min_vega_sum": -1.0}, ["min_vega_sum"]),
        ({"min_delta_global": math.nan}, ["min_delta_global", "finite number"]),
        ({"min_delta_band": math.inf}, ["min_delta_band", "finite number"]),
        ({"min_vega_sum": -math.inf}, ["min_vega_sum"]),
        ({"max_step": math.nan}, ["max_step"]),
        ({"max_step": 0}, ["max_step"]),
        ({"smoothing_window_days": 0}, ["smoothing_window_days", "greater than or equal to 1"]),
        ({"smoothing_window_days": 0.5}, ["smoothing_window_days"]),
        ({"smoothing_window_days": math.nan}, ["smoothing_window_days"]),
        ({"min_delta_globl": 0.03}, ["min_delta_globl", "not a policy setting"]),
        ({"smoothing_options": {"half_life_days": -1}}, ["smoothing_options for ewma", "half_life_days"]),
        ({"smoothing_options": {"half_life": 3}}, ["smoothing_options for ewma", "half_life"]),
        ({"smoothing": "rolling_median", "smoothing_options": {"window": 3}}, ["rolling_median", "takes no options"]),
        ({"bounds": {"min": 2.0, "max": 1.0}}, ["bounds", "min (2.0) must be below max (1.0)"]),
        ({"bounds": {"min": 1.0, "max": 1.0}}, ["bounds", "must be below max"]),
        ({"bounds": {"min": 0.5, "max": math.inf}}, ["bounds.max"]),
        ({"apply_scopes": "some"}, ["apply_scopes"]),
        ({"domain": "nope"}, ["Unknown domain 'nope'", "vol_surface"]),
    ],
)
def test_bad_policy_is_rejected_with_a_message_naming_the_problem(settings, words):
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy(**settings)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith("Invalid calibration policy")
    for word in words:
        assert word in message


def test_several_problems_are_all_reported():
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy(min_delta_global=-1, min_sample_size=-1, foo=1)
    for word in ("min_delta_global", "min_sample_size", "foo"):
        assert word in str(info.value)


def test_unknown_smoothing_is_also_an_unknown_plugin_error_downstream():
    from calibration_policy.plugins import get_smoother

    with pytest.raises(UnknownPluginError) as info:
        get_smoother("kalman")
    assert info.value.known == sorted(info.value.known)
    assert {"ewma", "rolling_median"} <= set(info.value.known)
    assert "Unknown smoothing strategy 'kalman'. Known names: " in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("min_delta_global = \n", ["not valid TOML"]),
        ("min_delta_global = 0.03\nmin_delta_global = 0.04\n", ["not valid TOML"]),
        ("[[[broken\n", ["not valid TOML"]),
        ("min_delta_global = nan\n", ["min_delta_global", "finite number"]),
        ("min_delta_global = -0.03\n", ["min_delta_global"]),
        ('smoothing = "kalman"\n', ["'kalman'", "Known names: ", "ewma", "rolling_median"]),
        ("min_delta_global = 0.03\ntypo_setting = 1\n", ["typo_setting", "not a policy setting"]),
    ],
)
def test_bad_toml_file_is_rejected_naming_the_file(tmp_path, text, words):
    path = tmp_path / "calibration_policy.toml"
    path.write_text(text, encoding="utf-8")
    for load in (CalibrationUpdatePolicy.from_toml, CalibrationUpdatePolicy.load):
        with pytest.raises(PolicyError) as info:
            load(path)
        assert str(path) in str(info.value)
        for word in words:
            assert word in str(info.value)


def test_an_unknown_key_among_a_rules_options_names_that_rule_and_its_options(tmp_path):
    path = tmp_path / "calibration_policy.toml"
    path.write_text('rules = ["cooldown_period", "min_delta"]\n[rule_options.cooldown_period]\ndayz = 3\n')
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy.load(path)
    assert "rule_options for cooldown_period: dayz is not an option of the rule “Cooldown” (check the spelling; " in (
        str(info.value)
    )
    assert "its options: days) (got 3)" in str(info.value)
    assert "policy setting" not in str(info.value)


def test_an_unknown_smoothing_option_names_the_smoother_and_its_options(tmp_path):
    path = tmp_path / "calibration_policy.toml"
    path.write_text('smoothing = "ewma"\n[smoothing_options]\nhalf_life = 3.0\n')
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy.load(path)
    assert "half_life is not an option of the smoothing “Exponentially weighted average”" in str(info.value)
    assert "its options: half_life_days" in str(info.value)


def test_binary_garbage_toml_is_rejected(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PolicyError, match="not valid TOML"):
        CalibrationUpdatePolicy.from_toml(path)


def test_missing_toml_file(tmp_path, monkeypatch):
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match="does not exist") as info:
        CalibrationUpdatePolicy.from_toml(missing)
    assert str(missing) in str(info.value)
    monkeypatch.setenv("CALIBRATION_POLICY", str(missing))
    with pytest.raises(PolicyError, match="does not exist"):
        CalibrationUpdatePolicy.load()


def test_from_dict_rejects_non_tables():
    with pytest.raises(PolicyError, match="table of settings"):
        CalibrationUpdatePolicy.from_dict([("min_delta_global", 0.03)])  # type: ignore[arg-type]


# -- explain() ------------------------------------------------------------------------------------


def test_explain_contains_the_live_numbers():
    text = CalibrationUpdatePolicy().explain()
    for piece in (
        "last 14 days",
        "0.03 for the global value",
        "0.03 for a band",
        "150 options",
        "5,000",
        "half-life 7 days",
    ):
        assert piece in text, piece


def test_explain_follows_the_toml_file(policy_file, tmp_path):
    text = CalibrationUpdatePolicy.load(policy_file).explain()
    for piece in (
        "last 21 days",
        "0.05 for the global value",
        "0.04 for a band",
        "0.06 for weekly",
        "300 options",
        "8,000",
        "half-life 3.5 days",
        "at most 0.08",
        "0.50–2.00",
        "Only the values that changed enough",
    ):
        assert piece in text, piece
    assert text != CalibrationUpdatePolicy().explain()
    policy_file.write_text(TOML.replace("min_sample_size = 300", "min_sample_size = 1200"), encoding="utf-8")
    changed = CalibrationUpdatePolicy.load(policy_file).explain()
    assert "1,200 options" in changed and "300 options" not in changed


def test_explain_names_the_median_strategy():
    text = CalibrationUpdatePolicy(smoothing="rolling_median").explain()
    assert "median" in text and "half-life" not in text


def test_explain_mentions_approval():
    assert "approve" in CalibrationUpdatePolicy(require_approval=True).explain()


# -- absurdly large numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"smoothing_window_days": 1e6}, {"smoothing_options": {"half_life_days": 1e300}}],
    ids=["window", "half-life"],
)
def test_huge_time_settings_are_rejected_up_front_or_work(settings):
    from datetime import datetime

    from calibration_policy import CalibrationRun, get_smoothed_multipliers

    try:
        policy = CalibrationUpdatePolicy(**settings)
    except PolicyError as error:
        assert next(iter(settings)) in str(error)
        return
    now = datetime(2025, 12, 24, tzinfo=UTC)
    run = CalibrationRun(
        run_id="r", timestamp=now, underlying="SPY", source="live",
        recommended_iv_multiplier={"global": 1.0}, sample_size=412, vega_sum=12400.0,
    )  # fmt: skip
    assert get_smoothed_multipliers([run.model_copy(update={"run_id": "q"})], run, policy) == {"global": 1.0}


@pytest.mark.parametrize("line", ["min_sample_size = true", "min_delta_global = true", "min_vega_sum = false"])
def test_booleans_are_not_numbers(tmp_path, line):
    path = tmp_path / "calibration_policy.toml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=line.split()[0]):
        CalibrationUpdatePolicy.from_toml(path)


def test_band_override_for_global_is_not_silently_ignored():
    try:
        policy = CalibrationUpdatePolicy(band_min_delta={"global": 0.10})
    except PolicyError as error:
        assert "global" in str(error)
        return
    assert policy.threshold_for("global") == 0.10
