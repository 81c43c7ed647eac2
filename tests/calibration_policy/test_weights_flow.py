"""The governed weights flow: suggest → pending suggestion → approve / modify / reject → archive,
rollback and as-of; and the ``calibration-policy weights`` commands."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import Context, UpdateOptions
from calibration_policy.archive import Archive
from calibration_policy.cli import main
from calibration_policy.default_plugins.scoring_weights.analysis import weights_policy
from calibration_policy.default_plugins.scoring_weights.domain import WeightsError, weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.errors import PolicyError, TargetError
from calibration_policy.pipeline import approve_suggestion
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.review import ReviewStore
from calibration_policy.stores import open_store

from .test_weights_support import EQUAL, make_trades, read_weights, write_weights

T0 = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"history_dir": tmp_path / "runs", "suggestions_dir": tmp_path / "suggestions"}


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    return write_weights(tmp_path / "scoring_weights.json")


@pytest.fixture
def target(weights_file):
    return weights_target(path=weights_file)


def test_suggest_records_a_run_and_a_pending_suggestion_with_the_analysis(target, weights_file, dirs):
    before = weights_file.read_bytes()
    outcome = suggest_weights(make_trades(400), target, timestamp=T0, context=Context.build(**dirs))
    assert outcome.action == "suggested" and weights_file.read_bytes() == before
    run, item = outcome.run, outcome.suggestion
    assert (run.domain, run.underlying, run.source, run.sample_size) == ("scoring_weights", "SCORING", "trades", 400)
    assert run.status == "pending" and run.pending_suggestion == item.suggestion_id
    assert run.applied_reason.startswith("Waiting for approval: Wallet 0.25 → ")
    stored = open_store(dirs["history_dir"]).get(run.run_id)
    assert stored.model_extra["analysis"]["suggested_weights"] == item.values
    assert item.status == "pending" and item.run_id == run.run_id and item.current_values == EQUAL
    assert math.isclose(sum(item.values.values()), 1.0, abs_tol=1e-9)
    analysis = item.details["analysis"]
    assert [row["factor"] for row in analysis["factors"]] == ["wallet", "cluster", "token", "context"]
    assert all(row["rationale"] for row in analysis["factors"])
    assert analysis["factors"][0]["rationale"].startswith("Strong predictor: winners avg")
    assert analysis["estimated_improvement"]["text"].startswith("At threshold 0.6 the suggested weights take")
    assert (
        item.reason.startswith("Suggested: Wallet 0.25 → ") and "winning trades taken at threshold 0.6" in item.reason
    )
    assert outcome.message.endswith(f"Review it as suggestion {item.suggestion_id}.")


def test_approving_a_suggestion_sets_it_live_and_archives_the_old_weights(target, weights_file, dirs, tmp_path):
    outcome = suggest_weights(make_trades(400), target, timestamp=T0, context=Context.build(**dirs))
    item = outcome.suggestion
    store = ReviewStore(dirs["suggestions_dir"])
    done = approve_suggestion(
        item.suggestion_id,
        target=target,
        notes="wallet earns it",
        context=Context.build(
            suggestions_dir=store, actor="ana", archive_dir=tmp_path / "archive", history_dir=dirs["history_dir"]
        ),
    )
    assert done.status == "approved" and done.applied_at is not None and done.reviewer == "ana"
    assert read_weights(weights_file) == item.values
    old, new = Archive(tmp_path / "archive", target.name).periods()
    assert old.values == EQUAL and old.since is None and old.until == done.applied_at
    assert new.values == item.values and new.since == done.applied_at and new.until is None
    assert new.change.suggestion_id == item.suggestion_id and new.change.run_id == outcome.run.run_id
    assert new.change.reason == f"Applied: suggestion {item.suggestion_id} approved by ana (wallet earns it)"
    run = open_store(dirs["history_dir"]).get(outcome.run.run_id)
    assert run.status == "applied" and run.applied_values == item.values


def test_a_change_too_small_for_the_policy_records_the_run_but_suggests_nothing(target, dirs):
    outcome = suggest_weights(
        make_trades(400), target, context=Context.build(policy=weights_policy(min_delta_global=0.5), **dirs)
    )
    assert outcome.action == "not suggested" and outcome.suggestion is None
    assert outcome.message.startswith("No new weights suggested: change too small (Wallet ")
    assert "< 0.5" in outcome.message
    assert outcome.run.status == "not applied" and ReviewStore(dirs["suggestions_dir"]).all() == []


def test_a_new_suggestion_expires_the_pending_one_and_is_smoothed_with_it(target, dirs):
    first = suggest_weights(make_trades(400, seed=1), target, timestamp=T0, context=Context.build(**dirs))
    second = suggest_weights(
        make_trades(400, seed=2, effects={"wallet": 100, "cluster": 300, "token": 0, "context": 0}),
        target,
        timestamp=T0 + timedelta(days=1),
        context=Context.build(**dirs),
    )
    store = ReviewStore(dirs["suggestions_dir"])
    assert store.get(first.suggestion.suggestion_id).status == "expired"
    assert store.get(second.suggestion.suggestion_id).status == "pending"
    analysis = second.analysis
    assert analysis.adjustments and analysis.adjustments[0].startswith("smoothed (ewma) with 1 earlier suggestion")
    assert analysis.unadjusted == second.run.recommended != second.suggestion.values
    assert math.isclose(sum(second.suggestion.values.values()), 1.0, abs_tol=1e-9)
    # the smoothed value lies between the two raw suggestions
    low, high = sorted((first.run.recommended["cluster"], second.run.recommended["cluster"]))
    assert low < second.suggestion.values["cluster"] < high


def test_the_weights_flow_refuses_a_policy_that_cannot_govern_weights(target, dirs):
    from calibration_policy import CalibrationUpdatePolicy

    with pytest.raises(PolicyError, match='governs vol_surface, not scoring weights; set domain = "scoring_weights"'):
        suggest_weights(make_trades(200), target, context=Context.build(policy=CalibrationUpdatePolicy(), **dirs))
    with pytest.raises(PolicyError, match="max_step rule clips each weight on its own, which breaks their sum of 1"):
        suggest_weights(
            make_trades(200),
            target,
            context=Context.build(
                policy=weights_policy(rules=("min_sample_size", "max_step", "min_delta"), max_step=0.5), **dirs
            ),
        )


def test_a_broken_live_weights_file_is_reported_not_used(weights_file, target, dirs):
    write_weights(weights_file, {**EQUAL, "wallet": 0.35})
    with pytest.raises(
        WeightsError, match=r"The live weights \(scoring_weights\) are not a valid set: weights sum to 1.1, not 1."
    ):
        suggest_weights(make_trades(200), target, context=Context.build(**dirs))
    weights_file.unlink()
    with pytest.raises(TargetError, match="does not exist"):
        suggest_weights(make_trades(200), target, context=Context.build(**dirs))
    assert not dirs["history_dir"].exists()


def test_rollback_and_as_of_for_weights(target, weights_file, dirs, tmp_path):
    archive_dir = tmp_path / "archive"
    store = ReviewStore(dirs["suggestions_dir"])
    item = suggest_weights(make_trades(400), target, context=Context.build(**dirs)).suggestion
    approve_suggestion(
        item.suggestion_id,
        target=target,
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=archive_dir),
    )
    entry = rollback(target, "original", context=Context.build(archive_dir=archive_dir, actor="ana"))
    assert entry.reason == "Applied: rolled back to the original weights by ana" and entry.domain == "scoring_weights"
    assert read_weights(weights_file) == EQUAL
    archive = Archive(archive_dir, target.name)
    approved_at = archive.entries()[0].at
    assert archive.as_of(approved_at + timedelta(microseconds=1)).values == item.values
    assert archive.as_of(entry.at).values == EQUAL


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, weights_file):
    trades = tmp_path / "trades.parquet"
    make_trades(400).to_parquet(trades)
    common = [
        "--weights",
        str(weights_file),
        "--history-dir",
        str(tmp_path / "runs"),
        "--archive-dir",
        str(tmp_path / "archive"),
        "--suggestions-dir",
        str(tmp_path / "suggestions"),
    ]

    def run(*args: str, trades_arg: bool = False) -> int:
        return main(["weights", *args, *common, *(["--trades", str(trades)] if trades_arg else [])])

    return run


def test_cli_analyze_suggest_list_approve_history_and_as_of(cli, capsys, weights_file, tmp_path, store_url):
    assert cli("analyze", trades_arg=True) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("Analysed 400 trades (minimum 100).")
        and "Strong predictor" in out
        and "Estimated improvement" in out
    )
    assert cli("suggest", trades_arg=True) == 0
    assert "Review it as suggestion" in capsys.readouterr().out
    assert cli("list", "--json") == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["status"] == "pending"
    assert cli("show") == 0
    assert "Waiting" not in capsys.readouterr().err
    assert cli("approve", item["suggestion_id"], "--by", "ana", "--notes", "ok") == 0
    assert "approved by ana; live weights now wallet" in capsys.readouterr().out
    assert read_weights(weights_file) == item["values"]
    assert cli("approve", item["suggestion_id"], "--by", "bob") == 2
    assert "Error: Suggestion" in capsys.readouterr().err
    assert cli("history") == 0
    history = capsys.readouterr().out
    assert "approved by ana" in history and "[original]" in history
    today = datetime.now(UTC).date().isoformat()
    assert cli("as-of", today) == 0
    assert capsys.readouterr().out.startswith(
        f"Live on {today} ({today} 23:59 UTC): wallet {item['values']['wallet']:.4f}"
    )
    assert (
        main(["as-of", today, "--target", "scoring_weights", "--archive-dir", str(tmp_path / "archive"), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["period"]["values"] == item["values"]
    assert main(["as-of", today, "--target", "nothing_here", "--archive-dir", str(tmp_path / "archive")]) == 2
    assert "archived targets: scoring_weights" in capsys.readouterr().err
    assert cli("rollback", "original", "--by", "ana") == 0
    assert "rolled back to the original weights by ana" in capsys.readouterr().out
    assert read_weights(weights_file) == EQUAL


def test_cli_modify_and_reject(cli, capsys, weights_file, store_url):
    cli("suggest", trades_arg=True)
    capsys.readouterr()
    cli("list", "--json")
    suggestion_id = json.loads(capsys.readouterr().out)[0]["suggestion_id"]
    bad = ["--wallet", "0.5", "--cluster", "0.3", "--token", "0.2", "--context", "0.2"]
    assert cli("modify", suggestion_id, *bad, "--by", "ana") == 2
    assert capsys.readouterr().err.strip() == "Error: weights sum to 1.2, not 1."
    good = ["--wallet", "0.4", "--cluster", "0.2", "--token", "0.2", "--context", "0.2"]
    assert cli("modify", suggestion_id, *good, "--by", "ana") == 0
    assert read_weights(weights_file) == {"wallet": 0.4, "cluster": 0.2, "token": 0.2, "context": 0.2}
    capsys.readouterr()
    cli("suggest", trades_arg=True)
    cli("list", "--json", "--status", "pending")
    capsys.readouterr()
    cli("list", "--json", "--status", "pending")
    pending = json.loads(capsys.readouterr().out)[0]["suggestion_id"]
    assert cli("reject", pending, "--by", "bo", "--notes", "not now") == 0
    assert "rejected by bo; the live weights are unchanged" in capsys.readouterr().out


def test_cli_bad_input_is_one_sentence_and_exit_2(cli, capsys, tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert (
        main(
            [
                "weights",
                "analyze",
                "--trades",
                str(tmp_path / "broken.parquet"),
                "--weights",
                str(tmp_path / "scoring_weights.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.startswith(f"Error: The trades file {tmp_path / 'broken.parquet'} is not a readable Parquet file")
        and err.count("\n") == 1
    )
    assert cli("as-of", "2025-13-01") == 2
    assert "DATE '2025-13-01' is not a date or time; use YYYY-MM-DD" in capsys.readouterr().err


def test_the_core_update_flow_governs_weights_too(target, weights_file, dirs, tmp_path):
    """Nothing in run_update is vol-specific: require_approval makes a pending weights suggestion."""
    from calibration_policy.default_plugins.scoring_weights.analysis import analyze_trades
    from calibration_policy.pipeline import run_update

    result = analyze_trades(make_trades(400), EQUAL).to_dict()
    pending = run_update(
        result,
        underlying="SCORING",
        source="trades",
        target=target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=weights_policy(), archive_dir=tmp_path / "archive", **dirs),
    )
    assert pending.run.status == "pending" and not pending.applied and read_weights(weights_file) == EQUAL
    assert pending.decision.reason.startswith("Waiting for approval: Wallet 0.25 → ")
    applied = run_update(
        result,
        underlying="SCORING",
        source="trades",
        target=target,
        options=UpdateOptions(timestamp=T0 + timedelta(hours=1)),
        context=Context.build(policy=weights_policy(require_approval=False), archive_dir=tmp_path / "archive", **dirs),
    )
    assert applied.applied and math.isclose(sum(read_weights(weights_file).values()), 1.0, abs_tol=1e-9)
    assert applied.change.kind == "update" and applied.change.domain == "scoring_weights"


def test_weights_runs_record_the_policy_version_that_decided_them(target, dirs):
    from calibration_policy.policy_versions import policy_fingerprint

    policy = weights_policy()
    outcome = suggest_weights(make_trades(400), target, timestamp=T0, context=Context.build(policy=policy, **dirs))
    stored = open_store(dirs["history_dir"]).get(outcome.run.run_id)
    assert stored.model_extra["policy_version"] == policy_fingerprint(policy)


def test_weights_commands_refuse_another_domains_suggestion_before_recording_anything(cli, capsys, tmp_path):
    """`weights approve` once recorded an approval on an IV suggestion, then failed; `weights reject` closed it."""
    from calibration_policy import CalibrationUpdatePolicy, run_update
    from calibration_policy.target import JsonFileTarget

    from .conftest import build_result

    live = tmp_path / "vol_surface_SPY.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    iv = run_update(
        build_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=JsonFileTarget(live),
        options=UpdateOptions(timestamp=T0),
        context=Context.build(
            policy=CalibrationUpdatePolicy(
                min_sample_size=1, min_vega_sum=0, require_approval=True, required_approvals=2
            ),
            history_dir=tmp_path / "runs",
            suggestions_dir=tmp_path / "suggestions",
        ),
    )
    sid = iv.run.pending_suggestion
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    for command in (["approve", sid, "--by", "ana"], ["reject", sid, "--by", "ana"]):
        assert cli(*command) == 2
        assert capsys.readouterr().err.strip() == (
            f"Error: Suggestion {sid} suggests IV multipliers for vol_surface_SPY, not for scoring_weights; "
            f"nothing was changed (review it with `calibration-policy review {command[0]} {sid}`)."
        )
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before
    item = ReviewStore(tmp_path / "suggestions").get(sid)
    assert item.status == "pending" and item.approvals == []


def test_history_changes_never_call_a_suggestion_that_only_waited_applied(tmp_path, capsys):
    """A suggestion that waited and was superseded read "Applied: global 1.185 → 1.199…" in `history --changes`."""
    from calibration_policy import CalibrationUpdatePolicy, run_update
    from calibration_policy.target import JsonFileTarget

    from .conftest import build_result

    live = tmp_path / "vol_surface_SPY.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0, require_approval=True)
    places = {"history_dir": tmp_path / "runs", "suggestions_dir": tmp_path / "suggestions"}
    for day, value in enumerate((1.2, 1.3)):
        run_update(
            build_result(global_m=value),
            underlying="SPY",
            source="live",
            target=JsonFileTarget(live),
            options=UpdateOptions(timestamp=T0 + timedelta(days=day)),
            context=Context.build(policy=policy, archive_dir=tmp_path / "archive", **places),
        )
    first, second = ReviewStore(places["suggestions_dir"]).all()
    assert first.status == "expired" and first.reason.startswith("Suggested: ")
    assert (
        main(
            [
                "history",
                "--changes",
                "--full",
                "--history-dir",
                str(places["history_dir"]),
                "--archive-dir",
                str(tmp_path / "archive"),
                "--suggestions-dir",
                str(places["suggestions_dir"]),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["what"].rsplit(" ", 1)[-1] for r in rows] == ["proposed", "proposed", "superseded"]
    assert not any(r["why"].startswith("Applied") for r in rows)
    assert rows[2]["why"] == (
        f"Superseded by the run of {T0 + timedelta(days=1):%Y-%m-%d %H:%M} UTC (suggestion {second.suggestion_id}) "
        "before anyone reviewed it"
    )
