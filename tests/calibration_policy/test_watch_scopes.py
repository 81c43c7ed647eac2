"""The watch's per-scope test (``watch_test = "permutation_scopes"``): every scope of every run paired, new values
against old, pooled in an exact sign-flip permutation test; and the domains' score parts it pairs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.archive import ArchiveEntry
from calibration_policy.errors import PolicyError
from calibration_policy.models import CalibrationRun
from calibration_policy.plugins import get_domain
from calibration_policy.watch import judge, permutation_p, recorded, signed_rank_p

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
TRUTH = {"global": 1.0, "weekly": 1.0, "monthly": 1.0}


def change(old: dict[str, float], new: dict[str, float]) -> ArchiveEntry:
    return ArchiveEntry.model_construct(
        change_id="c1", domain="vol_surface", previous_values=dict(old), new_values=dict(new), watch=None
    )


def runs(count: int, wobble: float = 0.004) -> list[CalibrationRun]:
    """Runs recommending about the truth (no band vega: scored on the default tracking error per scope)."""
    return [
        CalibrationRun.model_construct(
            run_id=f"r{i}",
            timestamp=T0 + timedelta(days=i + 1),
            underlying="SPY",
            domain="vol_surface",
            recommended_iv_multiplier={
                scope: value * (1 + wobble * (-1) ** (i + k)) for k, (scope, value) in enumerate(TRUTH.items())
            },
            sample_size=400,
        )
        for i in range(count)
    ]


def policy(**settings) -> CalibrationUpdatePolicy:
    return CalibrationUpdatePolicy(**{"watch_runs": 5, "watch_test": "permutation_scopes", **settings})


def test_the_permutation_test_weighs_sizes_where_wilcoxon_weighs_ranks():
    assert permutation_p([1.0, 2.0, 3.0]) == pytest.approx(1 / 8)
    # Negative 3 against positives 1, 1, 1, 10: of the 32 sign patterns, 9 have a negative sum ≤ 3 ({}, each 1,
    # each pair of 1s, all three, the 3); Wilcoxon ranks them 2, 2, 2, 4, 5 and counts 8 with a rank sum ≤ 4.
    assert permutation_p([-3.0, 1.0, 1.0, 1.0, 10.0]) == pytest.approx(9 / 32)
    assert signed_rank_p([-3.0, 1.0, 1.0, 1.0, 10.0]) == pytest.approx(8 / 32)
    assert permutation_p([0.0, 0.0]) == 1.0 and permutation_p([]) == 1.0
    # Many differences neither overflow nor lose the level (2ⁿ patterns past what a float counts).
    assert permutation_p([1.0] * 1500) == pytest.approx(0.0, abs=1e-300)
    assert permutation_p([1.0, -1.0] * 750) == pytest.approx(0.5, abs=0.02)
    assert signed_rank_p([1.0] * 1100) == pytest.approx(0.0, abs=1e-300)


def test_a_planted_worse_change_fails_on_every_scope_of_every_run():
    verdict = judge(change(TRUTH, {scope: 1.03 for scope in TRUTH}), runs(5), policy(), superseded=True)
    assert verdict.state == "failed", verdict.reason
    assert (verdict.test, verdict.pairs, verdict.runs, verdict.new_worse) == ("permutation_scopes", 15, 5, 5)
    assert verdict.p_worse == pytest.approx(0.5**15)
    assert "permutation test on 15 paired scope scores p = 3.05e-05 ≤ 0.05" in verdict.reason
    # The run's own sign test could not say as much from 5 runs.
    assert judge(change(TRUTH, {s: 1.03 for s in TRUTH}), runs(5), policy(watch_test="sign")).pairs == 5


def test_a_planted_better_change_passes():
    verdict = judge(change({scope: 1.03 for scope in TRUTH}, TRUTH), runs(5), policy(), superseded=True)
    assert verdict.state == "passed", verdict.reason
    assert verdict.p_better == pytest.approx(0.5**15) and verdict.new_better == 5


def test_equal_values_are_inconclusive():
    verdict = judge(change(TRUTH, TRUTH), runs(5), policy(watch_tolerance=0.0), superseded=True)
    assert verdict.state == "inconclusive" and verdict.cannot_score is None
    assert (verdict.p_worse, verdict.p_better) == (1.0, 1.0)


@pytest.mark.parametrize("broken", [float("nan"), math.inf, "1.0", None, RuntimeError("no data")])
def test_a_part_that_cannot_be_scored_stops_the_watch_never_a_roll_back(monkeypatch, broken):
    domain = get_domain("vol_surface")
    honest = type(domain).score_parts

    def parts(self, values, run):
        if run.run_id == "r2" and values["global"] != 1.0:
            if isinstance(broken, Exception):
                raise broken
            return {**honest(self, values, run), "weekly": broken}
        return honest(self, values, run)

    monkeypatch.setattr(type(domain), "score_parts", parts)
    verdict = judge(change(TRUTH, {scope: 1.5 for scope in TRUTH}), runs(5), policy(), superseded=True)
    assert (verdict.state, verdict.cannot_score, verdict.runs) == ("inconclusive", "r2", 2)
    assert verdict.reason.startswith("Cannot score: run r2 gives no score for the new values")


def test_the_default_parts_are_the_scopes_tracking_errors_and_average_to_the_score(make_result):
    from calibration_policy.history import build_run

    result = make_result(global_m=1.1, bands={"weekly": 1.2, "monthly": 1.0}, n=400)
    domain = get_domain("vol_surface")
    banded = build_run(result, "SPY", "live", T0)  # per band, weighted by vega: their mean is the score
    parts = domain.score_parts(TRUTH, banded)
    assert set(parts) == {"weekly", "monthly"}
    assert sum(parts.values()) / len(parts) == pytest.approx(domain.score(TRUTH, banded))
    for band in result["bands"].values():  # without band vega: the default tracking error per scope
        del band["vega_sum"]
    run = build_run(result, "SPY", "live", T0)
    assert domain.score_parts(TRUTH, run) == pytest.approx({"global": 2.0, "weekly": 4.0, "monthly": 0.0})
    assert sum(domain.score_parts(TRUTH, run).values()) / 3 == pytest.approx(domain.score(TRUTH, run))
    assert domain.score_parts({"other": 1.0}, run) is None


def test_a_domain_that_scores_a_run_as_a_whole_gives_one_part():
    from calibration_policy.domain import Domain

    class Whole(Domain):
        name = "whole"

        def extract(self, result):
            raise NotImplementedError

        def score(self, values, run):
            return 2.5

    assert Whole().score_parts(TRUTH, runs(1)[0]) == {"all": 2.5}


def test_a_verdict_recorded_before_it_kept_its_test_still_loads():
    old = {"change_id": "c1", "state": "failed", "runs": 5, "wanted": 5, "new_better": 0, "new_worse": 5}
    verdict = recorded(ArchiveEntry.model_construct(change_id="c1", watch=old))
    assert verdict is not None and (verdict.state, verdict.test, verdict.pairs) == ("failed", None, None)


def test_an_unknown_test_name_is_refused_in_plain_words():
    with pytest.raises(PolicyError) as refused:
        CalibrationUpdatePolicy(watch_runs=6, watch_test="t_test")
    assert "watch_test must be 'sign', 'wilcoxon' or 'permutation_scopes' (got 't_test')" in str(refused.value)
