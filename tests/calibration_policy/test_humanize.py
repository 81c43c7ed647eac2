"""Numbers as a reader sees them: a limit reads as it was set, and a value beside it never reads the same
unless it is the same."""

from __future__ import annotations

import pytest

from calibration_policy.humanize import fmt_against, fmt_setting, fmt_value_set


@pytest.mark.parametrize(
    "value, limit, expected",
    [
        (0.0171, 0.015, ("0.017", "0.015")),  # was "0.02" against "0.01": the threshold read as a third less than set
        (0.21, 0.03, ("0.21", "0.03")),
        (0.0299, 0.03, ("0.0299", "0.03")),  # close to the limit: enough decimals to tell them apart
        (0.05, 0.05, ("0.05", "0.05")),
    ],
)
def test_a_limit_reads_as_it_was_set_and_the_value_beside_it_as_precisely(value, limit, expected):
    assert fmt_against(value, limit) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (10_000_000.0, "10,000,000"),  # explain once printed "min notional usd 1e+07"
        (0.015, "0.015"),
        (1e-05, "0.00001"),
        (25, "25"),
        (2.5, "2.5"),
        ("trimmed", "trimmed"),
        (2.5e20, "2.5e+20"),  # past 1e15 the digits mean nothing to a reader
    ],
)
def test_a_setting_reads_as_its_author_wrote_it(value, expected):
    assert fmt_setting(value) == expected


BADLY_ROUNDED = {"momentum": 0.2496, "value": 0.2496, "quality": 0.2496, "carry": 0.2512}


@pytest.mark.parametrize(
    "values, decimals, expected",
    [
        (BADLY_ROUNDED, 3, ["0.250", "0.250", "0.249", "0.251"]),  # one by one: 0.250 ×3 + 0.251 = 1.001
        (BADLY_ROUNDED, 2, ["0.25", "0.25", "0.25", "0.25"]),
        ({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 2, ["0.34", "0.33", "0.33"]),  # one by one: 0.99; ties: the first
        ({"a": 0.29, "b": 0.71}, 2, ["0.29", "0.71"]),  # 0.29 × 100 is 28.999… in binary: still 0.29
        ({"a": 0.1254, "b": 0.1254, "c": 0.7492}, 3, ["0.126", "0.125", "0.749"]),  # one by one: 0.999
    ],
)
def test_a_set_that_sums_to_one_is_shown_so_that_its_figures_sum_to_one(values, decimals, expected):
    shown = fmt_value_set(values, decimals, sums_to_one=True)
    assert list(shown.values()) == expected
    assert sum(round(float(text) * 10**decimals) for text in shown.values()) == 10**decimals


def test_a_set_is_rounded_as_a_whole_only_when_its_domain_says_it_sums_to_one():
    assert list(fmt_value_set(BADLY_ROUNDED, 3).values()) == ["0.250", "0.250", "0.250", "0.251"]
    assert fmt_value_set({"global": 1234.5678, "weekly": -0.0}) == {"global": "1,234.568", "weekly": "0.000"}
    # a value missing or broken: nothing to sum, each shown alone
    assert fmt_value_set({"a": 0.2496, "b": None, "c": float("nan")}, 3, sums_to_one=True) == {
        "a": "0.250",
        "b": "–",
        "c": "not a number",
    }


def test_a_plugins_options_read_by_their_titles_and_units():
    """A reader took "(max widen bp 0.5)" for jargon: an option the plugin titled and gave a unit reads in words."""
    from pydantic import BaseModel, Field

    from calibration_policy.humanize import fmt_settings

    class Options(BaseModel):
        max_widen_bp: float = Field(0.5, title="largest widening", json_schema_extra={"unit": "bp"})
        min_notional_usd: float = 10_000_000.0  # no title: its name, spaced

    assert fmt_settings(Options()) == "largest widening 0.5 bp, min notional usd 10,000,000"
    assert fmt_settings(None) == ""
