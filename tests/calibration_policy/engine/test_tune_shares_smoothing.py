"""Tune shares the smoothing between its candidates; each candidate still decides exactly as a replay
of that candidate alone (smoothed afresh, nothing shared): the same figures, and the same route,
live values and reason for every run read."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from calibration_policy import CalibrationRun, CalibrationUpdatePolicy
from calibration_policy.lab import tune
from calibration_policy.replay import SmoothingCache, replay

T0 = datetime(2025, 1, 6, 21, tzinfo=UTC)
START = {"global": 1.0, "weekly": 1.0, "monthly": 1.0}


def _history() -> list[CalibrationRun]:
    """Three underlyings of daily runs: a random walk with noise, one day in eight too thin, and one
    underlying whose monthly band only starts a month in (runs with other scopes)."""
    rng = random.Random(7)
    runs = []
    for name in ("SPY", "QQQ", "IWM"):
        level = {"global": 1.0, "weekly": 1.02, "monthly": 0.99}
        for day in range(70):
            level = {scope: value + rng.gauss(0, 0.012) for scope, value in level.items()}
            scopes = [s for s in level if not (name == "IWM" and s == "monthly" and day < 30)]
            thin = rng.random() < 0.125
            stamp = T0 + timedelta(days=day)
            runs.append(
                CalibrationRun(
                    run_id=f"{stamp.strftime('%Y%m%dT%H%M%S.000000Z')}_{name}_live",
                    timestamp=stamp,
                    underlying=name,
                    source="live",
                    recommended_iv_multiplier={s: level[s] + rng.gauss(0, 0.02) for s in scopes},
                    sample_size=60 if thin else 300 + rng.randrange(200),
                    vega_sum=1500.0 if thin else 9000.0 + rng.random() * 4000,
                )
            )
    return runs


@pytest.mark.parametrize(
    "base, space",
    [
        (CalibrationUpdatePolicy(), {"min_delta_global": (0.005, 0.05), "min_delta_band": (0.005, 0.05)}),
        (
            CalibrationUpdatePolicy(max_step=0.06, rules=("min_sample_size", "min_delta", "max_step", "bounds")),
            {"min_delta_global": (0.005, 0.05), "max_step": (0.05, 0.1)},
        ),
        (  # a rule with a batch form reading the time of the last change, and one without a batch form
            CalibrationUpdatePolicy(
                rules=("min_sample_size", "stabilization_window", "min_delta", "cooldown_period", "bounds"),
                rule_options={"cooldown_period": {"days": 2}},
            ),
            {"min_delta_global": (0.005, 0.04), "rule_options.cooldown_period.days": (1, 4)},
        ),
    ],
    ids=["thresholds", "max_step", "lab_rules"],
)
def test_each_tuned_candidate_decides_as_a_replay_of_it_alone(base, space):
    history = _history()
    cache = SmoothingCache()
    tuned = tune(history, base, space, n=9, start_values=START, cache=cache)
    assert len(tuned.candidates) == 9
    for candidate in tuned.candidates:
        alone = replay(history, candidate.policy, START)  # no cache: smoothed afresh
        assert candidate.figures == alone.figures
        shared = replay(history, candidate.policy, START, cache=cache)  # the smoothing tune shared
        assert shared.figures == candidate.figures
        for one, other in zip(shared.decisions[::7], alone.decisions[::7], strict=True):
            assert (one.run_id, one.route, one.live_before, one.live_after) == (
                other.run_id,
                other.route,
                other.live_before,
                other.live_after,
            )
            assert one.reason == other.reason
        assert [d.reason for d in shared.decisions if d.applied] == [d.reason for d in alone.decisions if d.applied]
