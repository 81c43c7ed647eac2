"""Every benchmark still runs: a benchmark that silently stopped working leaves the figures in
docs/operations/performance.md without a way to measure them again.

The default suite runs each one at tiny sizes (a few hundred runs, one or two samples; seconds each), results
written to a temporary folder. The larger `--quick` table runs only with CALIBRATION_POLICY_LONG_TESTS=1; the
full sizes are run by hand (docs/operations/performance.md says how).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import warm

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = warm.run([sys.executable, str(BENCHMARKS / script), *args], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_first_decision(tmp_path):
    run("bench_first_decision.py", "--repeat", "1", "--out", str(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text())


def test_policy_lab(tmp_path):
    run(
        "bench_lab.py",
        "--underlyings",
        "2",
        "--days",
        "30",
        "--candidates",
        "4",
        "--loop-candidates",
        "1",
        "--repeat",
        "1",
        "--out",
        str(tmp_path / "out.json"),
    )
    assert json.loads((tmp_path / "out.json").read_text())


def test_stores_side_by_side(tmp_path, postgres_server):  # the fixture only proves a server can be started here
    run(
        "bench_stores.py",
        "--runs",
        "300",
        "--repeat",
        "2",
        "--updaters",
        "4",
        "--workdir",
        str(tmp_path),
        "--out",
        str(tmp_path / "out.json"),
    )
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["stores"]["postgresql"]["consistent"] and results["stores"]["files"]["consistent"]


def test_the_one_command_table_at_tiny_sizes(tmp_path):
    run("bench_all.py", "--sizes", "200", "--repeat", "2", "--out", str(tmp_path / "out.json"))  # 4 underlyings × 50
    report = json.loads((tmp_path / "out.json").read_text())
    assert [row["n"] for row in report["history"]] == [200]
    assert report["update"]["history_runs"] == 200 + 2 + 1 and report["archive_growth"]["big_archive"] == 200


def test_the_million_table_at_tiny_sizes(tmp_path):
    """`bench_all.py --runs N` (bench_million.py): every path beside its fair baseline, here at 300 runs."""
    run("bench_all.py", "--runs", "300", "--repeat", "2", "--workdir", str(tmp_path), "--out", str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text())


def test_history_at_tiny_sizes(tmp_path):
    run("bench_history.py", "--sizes", "200", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out.json"))
    assert [row["n"] for row in json.loads((tmp_path / "out.json").read_text())["sizes"]] == [200]


def test_panel_at_tiny_sizes():
    assert "Goal: panel median" in run("bench_panel.py", "--runs", "200", "--requests", "2", "--naive-repeats", "1")


def test_engine_at_tiny_sizes(tmp_path):
    run(
        *("bench_engine.py", "--underlyings", "2", "--days", "30", "--candidates", "2"),
        *("--backfill", "100", "--records", "20", "--repeat", "1", "--out", str(tmp_path / "out.json")),
    )
    assert json.loads((tmp_path / "out.json").read_text())


def test_engine_write_paths_alone_at_tiny_sizes():
    out = run("bench_engine.py", "--writes-only", "--backfill", "30", "--records", "10", "--repeat", "1")
    assert "backfill 30 record+load" in out and "record one run (median of 10)" in out and "load " in out


def test_weights_evidence_at_tiny_sizes(tmp_path):
    """At a size without a time goal, so only a disagreement of the two implementations fails it."""
    run("bench_weights_evidence.py", "--sizes", "300", "--repeat", "1", "--json", str(tmp_path / "out.json"))
    [row] = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert row["trades"] == 300 and row["agree"] and row["goal_s"] is None


def test_weights_gate(tmp_path):
    run("bench_weights_gate.py", "--quick", "--json", str(tmp_path / "out.json"))
    rates = json.loads((tmp_path / "out.json").read_text())["rates"]
    assert rates[0]["cases"] == 4 and all(0 <= r["low"] <= r["rate"] <= r["high"] <= 1 for r in rates)


def test_watch_after_apply(tmp_path):
    run("bench_watch.py", "--quick", "--out", str(tmp_path / "out.json"))
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["runs"] == 1_200 and results["detection"][0]["watch_runs"] == 6
    assert results["update_cost"]["updates"] == 8 and results["update_cost"]["watch_own_ms"]["median"] > 0
    planted, needed = results["oracle"]["at_planted_effect"], results["oracle"]["at_90_percent"]
    assert planted["fit_error_ratio"] == pytest.approx(1.10) and 0.2 < planted["power_simulated"] < 0.5
    assert needed["power_closed_form"] == pytest.approx(0.90) and abs(needed["power_simulated"] - 0.90) < 0.03
    assert results["detection_at_oracle_90"]["fit_error_ratio"] == pytest.approx(needed["fit_error_ratio"])
    tests = {"sign", "wilcoxon", "permutation_scopes"}
    assert {row["test"] for row in results["detection_at_oracle_90"]["detection"]} == tests
    correlated = results["detection_scopes_correlated"]
    assert correlated["correlation"] == 0.5 and {row["test"] for row in correlated["detection"]} == tests


def test_outbox(tmp_path):
    run("bench_outbox.py", "--quick", "--out", str(tmp_path / "out.json"))
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["delivery"]["events"] == 100 and results["update_step"]["updates_per_arm"] == 6


def test_outbox_under_sigkill(tmp_path):
    """60 decisions while updaters and the deliverer are SIGKILLed: nothing lost, nothing invented."""
    out = run("bench_outbox_kill.py", "--quick", "--out", str(tmp_path / "out.json"))
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["decisions"] >= 60 and results["kills"]["updaters"] >= 1, out
    assert (results["lost"], results["invented"], results["problems"]) == (0, 0, 0), out
    assert results["delivered"] == results["events"] > 0 and results["intents_left"] == 0


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CALIBRATION_POLICY_LONG_TESTS") != "1",
    reason="about 80 s; the tiny run above covers the same code, CALIBRATION_POLICY_LONG_TESTS=1 runs it",
)
def test_the_one_command_table_quick(tmp_path):
    run("bench_all.py", "--quick", "--out", str(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text())["quick"]
