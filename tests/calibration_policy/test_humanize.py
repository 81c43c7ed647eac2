"""Numbers as a reader sees them: a limit reads as it was set, and a value beside it never reads the same
unless it is the same."""

from __future__ import annotations

import pytest

from calibration_policy.humanize import fmt_against, fmt_setting


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
