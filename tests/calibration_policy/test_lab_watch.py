"""The policy lab and the watch after apply: compare and tune say, per candidate, how many changes the watch
would have rolled back and how many wrongly, and tune can make the wrong ones (or all roll backs) an objective."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, PolicyError
from calibration_policy.cli import main
from calibration_policy.lab import compare, tune
from calibration_policy.steps import record_calibration_result

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
OLD = {"global": 1.0, "weekly": 1.0, "monthly": 1.0}
WATCHING = CalibrationUpdatePolicy(watch_runs=5, watch_action="roll_back")


@pytest.fixture
def history(tmp_path: Path, make_result) -> Path:
    """Day 0 applies 1.08; the thin runs after it (never applied) recommend 1.0 for five days, then 1.08 again:
    a watch of 5 runs rolls the change back, wrongly (the old values then fit worse); one of 10 sees both halves
    and rolls nothing back."""
    folder = tmp_path / "runs"
    days = [(0, 1.08, 412)] + [(d, 1.0, 100) for d in range(1, 6)] + [(d, 1.08, 100) for d in range(6, 16)]
    for day, value, n in days:
        result = make_result(global_m=value, bands={"weekly": value, "monthly": value}, n=n)
        record_calibration_result(result, "SPY", "live", folder, T0 + timedelta(days=day))
    return folder


def test_compare_lists_what_the_watch_would_do_for_each_policy(history):
    comparison = compare(
        history,
        {
            "watch5": WATCHING,
            "watch10": WATCHING.model_copy(update={"watch_runs": 10}),
            "none": CalibrationUpdatePolicy(),
        },
        start_values=OLD,
    )
    rows = {row["policy"]: row for row in comparison.rows()}
    assert (rows["watch5"]["watch_rolled_back"], rows["watch5"]["watch_wrong"]) == (1, 1)
    assert (rows["watch10"]["watch_rolled_back"], rows["watch10"]["watch_wrong"]) == (0, 0)
    assert "watch_rolled_back" not in rows["none"]
    policies = comparison.to_dict()["policies"]
    assert policies["watch5"]["watch_wrong"] == 1 and "watch_wrong" not in policies["none"]


def test_tune_lists_the_watch_per_candidate_and_picks_fewer_wrong_roll_backs_when_asked(history):
    space = {"watch_runs": (5, 10)}
    plain = tune(history, WATCHING, space, n=6, start_values=OLD)
    assert {c.params["watch_runs"]: c.watch for c in plain.candidates}[5] == (1, 1)
    # Roll backs are counted, not replayed: every candidate moves the live values alike, so movement and lag
    # alone cannot tell them apart and the first one stands for all of them.
    assert len(plain.front) == 1 and plain.chosen.watch == (1, 1)
    asked = tune(history, WATCHING, space, n=6, start_values=OLD, objective="watch_wrong")
    assert asked.chosen.watch is not None and asked.chosen.watch[1] == 0
    assert asked.chosen.params["watch_runs"] > 5
    data = asked.to_dict()
    assert data["objective"] == "watch_wrong" and data["chosen"]["watch_wrong"] == 0
    assert all({"watch_rolled_back", "watch_wrong"} <= set(c) for c in data["front"])
    fewer = tune(history, WATCHING, space, n=6, start_values=OLD, objective="watch_rolled_back")
    assert fewer.chosen.watch == (0, 0)


def test_tune_tunes_the_watchs_hard_limit_and_refuses_a_watch_objective_without_a_watch(history):
    space = {"watch_hard_limit.runs": (2, 3), "watch_hard_limit.worse_by": (0.1, 0.2)}
    result = tune(history, WATCHING, space, n=4, start_values=OLD)
    limits = {(c.policy.watch_hard_limit.runs, c.policy.watch_hard_limit.worse_by) for c in result.candidates}
    assert limits == {(2, 0.1), (2, 0.2), (3, 0.1), (3, 0.2)}
    with pytest.raises(PolicyError, match="needs its worse_by too"):
        tune(history, CalibrationUpdatePolicy(), {"watch_hard_limit.runs": (2, 3)}, n=2, start_values=OLD)
    with pytest.raises(PolicyError, match="objective watch_wrong needs a watch"):
        tune(history, CalibrationUpdatePolicy(), {"min_delta_global": (0.01, 0.05)}, n=2, objective="watch_wrong")
    with pytest.raises(PolicyError, match="objective must be one of"):
        tune(history, WATCHING, {"watch_runs": (5, 6)}, n=2, objective="speed")


def test_the_compare_and_tune_commands_show_the_watch(history, tmp_path, capsys):
    start = tmp_path / "start.json"
    start.write_text(json.dumps(OLD))
    policy = tmp_path / "watch5.toml"
    policy.write_text('watch_runs = 5\nwatch_action = "roll_back"\n')
    where = ["--history-dir", str(history), "--start-values", str(start)]
    assert main(["compare", str(policy), *where, "--no-live", "--json"]) == 2  # one policy is not a comparison
    capsys.readouterr()
    other = tmp_path / "watch10.toml"
    other.write_text('watch_runs = 10\nwatch_action = "roll_back"\n')
    assert main(["compare", str(policy), str(other), *where, "--no-live", "--json"]) == 0
    table = {row["policy"]: row for row in json.loads(capsys.readouterr().out)["table"]}
    assert (table["watch5"]["watch_wrong"], table["watch10"]["watch_wrong"]) == (1, 0)
    assert main(["compare", str(policy), str(other), *where, "--no-live"]) == 0
    assert "Wrong" in capsys.readouterr().out
    args = ["tune", "--policy", str(policy), *where, "--param", "watch_runs=5:10", "--n", "6"]
    assert main([*args, "--objective", "watch_wrong", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["objective"] == "watch_wrong" and report["chosen"]["watch_wrong"] == 0
    assert main([*args, "--objective", "watch_wrong"]) == 0
    out = capsys.readouterr().out
    assert "or fewer wrong roll backs; nothing beats these on all three" in out and "Wrong" in out
