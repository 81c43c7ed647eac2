"""``review …`` and ``rollback`` serve any domain from the CLI; ``weights …`` refuses another domain's suggestion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, run_update
from calibration_policy.cli import main
from calibration_policy.default_plugins.sample import VOL_SURFACE
from calibration_policy.default_plugins.vol_surface import vol_surface_target
from calibration_policy.stores import open_reviews

from .conftest import T0, build_result


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    """A data folder whose policy waits for a person's approval, with SPY's live vol surface in it."""
    monkeypatch.setenv("COLUMNS", "200")  # one table row per suggestion
    for name in ("HISTORY", "ARCHIVE", "SUGGESTIONS"):
        monkeypatch.delenv(f"CALIBRATION_{name}_DIR", raising=False)
    root = tmp_path / "data"
    (root / "config").mkdir(parents=True)
    (root / "config" / "vol_surface_SPY.json").write_bytes(VOL_SURFACE.read_bytes())
    (root / "calibration_policy.toml").write_text("require_approval = true\n")
    return root


def suggest(root: Path, global_m: float, day: int = 0) -> str:
    from datetime import timedelta

    outcome = run_update(
        build_result(global_m=global_m, bands={"weekly": global_m, "monthly": global_m}),
        underlying="SPY",
        source="live",
        target=vol_surface_target("SPY", root / "config" / "vol_surface_SPY.json"),
        options=UpdateOptions(timestamp=T0 + timedelta(days=day)),
        context=Context.build(
            policy=CalibrationUpdatePolicy.load(root / "calibration_policy.toml"),
            history_dir=root / "calibration_runs",
            archive_dir=root / "config_archive",
            suggestions_dir=root / "suggestions",
        ),
    )
    assert outcome.route == "propose", outcome.summary()
    return open_reviews(root / "suggestions").all(status="pending")[-1].suggestion_id


def cli(capsys, root: Path, *args: str) -> tuple[int, str]:
    code = main([*args, "--data", str(root)])
    out = capsys.readouterr()
    return code, out.out + out.err


def live(root: Path) -> float:
    return json.loads((root / "config" / "vol_surface_SPY.json").read_text())["iv_multiplier"]


def test_a_vol_surface_suggestion_is_listed_shown_approved_and_rolled_back(capsys, root: Path):
    waiting = suggest(root, 1.10)
    code, text = cli(capsys, root, "review", "list")
    assert code == 0 and waiting in text and "vol_surface" in text and "pending" in text and "Global 1.1000" in text
    code, text = cli(capsys, root, "review", "show", waiting)
    assert code == 0 and "Suggested: Global 1.1000, Monthly 1.1000, Weekly 1.1000" in text

    code, text = cli(capsys, root, "weights", "approve", waiting, "--by", "ana")
    assert code == 2 and f"nothing was changed (review it with `calibration-policy review approve {waiting}`)" in text
    assert live(root) == 1.0

    code, text = cli(capsys, root, "review", "approve", waiting, "--by", "ana", "--notes", "looks right")
    assert code == 0 and f"Suggestion {waiting} approved by ana; live now Global 1.1000" in text
    assert live(root) == 1.10

    code, text = cli(capsys, root, "rollback", "original", "-u", "SPY", "--by", "ana", "--json")
    assert code == 0 and json.loads(text)["new_values"]["global"] == 1.0
    assert live(root) == 1.0


def test_modify_takes_numbers_only_and_reject_leaves_the_live_values(capsys, root: Path):
    first = suggest(root, 1.10)
    code, text = cli(capsys, root, "review", "modify", first, "--set", "global=1,05", "--by", "ana")
    assert code == 2 and "--set 'global=1,05' is not SCOPE=NUMBER" in text and live(root) == 1.0
    code, text = cli(capsys, root, "review", "modify", "pending", "-u", "SPY", "--set", "global=1.05", "--by", "ana")
    assert code == 0 and "modified by ana; live now Global 1.0500, Monthly 1.1000" in text
    assert live(root) == 1.05

    second = suggest(root, 1.30, day=1)
    code, text = cli(capsys, root, "review", "reject", second, "--by", "bo", "--notes", "too far")
    assert code == 0 and f"Suggestion {second} rejected by bo; the live values are unchanged." in text
    assert live(root) == 1.05
    code, text = cli(capsys, root, "review", "list", "--status", "rejected", "--json")
    assert [item["suggestion_id"] for item in json.loads(text)] == [second]


def test_a_suggestion_of_another_domain_needs_that_domains_policy(capsys, root: Path):
    waiting = suggest(root, 1.10)
    (root / "calibration_policy.toml").write_text('domain = "scoring_weights"\nrequire_approval = true\n')
    code, text = cli(capsys, root, "review", "approve", waiting, "--by", "ana")
    assert code == 2 and "holds vol_surface values, but the policy in force governs scoring_weights" in text
    assert live(root) == 1.0
