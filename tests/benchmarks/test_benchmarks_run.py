"""Every benchmark in README still runs (tiny sizes, results written to a temporary folder): a benchmark
that silently stopped working leaves README's figures without a way to measure them again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


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
        "--workdir",
        str(tmp_path),
        "--out",
        str(tmp_path / "out.json"),
    )
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["stores"]["postgresql"]["consistent"] and results["stores"]["files"]["consistent"]


@pytest.mark.parametrize("script, args", [("bench_all.py", ["--quick"])])
def test_the_one_command_table(tmp_path, script, args):
    run(script, *args, "--out", str(tmp_path / "out.json"))


def test_weights_gate(tmp_path):
    run("bench_weights_gate.py", "--quick", "--json", str(tmp_path / "out.json"))
    rates = json.loads((tmp_path / "out.json").read_text())["rates"]
    assert rates[0]["cases"] == 4 and all(0 <= r["low"] <= r["rate"] <= r["high"] <= 1 for r in rates)


def test_watch_after_apply(tmp_path):
    run("bench_watch.py", "--quick", "--out", str(tmp_path / "out.json"))
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["runs"] == 1_200 and results["detection"][0]["watch_runs"] == 6
    assert results["update_cost"]["updates"] == 8


def test_outbox(tmp_path):
    run("bench_outbox.py", "--quick", "--out", str(tmp_path / "out.json"))
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["delivery"]["events"] == 100 and results["update_step"]["updates_per_arm"] == 6
