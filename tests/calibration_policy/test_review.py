"""The review workflow, for any domain: propose → approve | modify | reject (| expire), exactly once.

Suggestions, the live config, the archive and the runs are real files in ``tmp_path``; the
race tests use real processes, because a lock that only works within one process is no lock.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.archive import Archive
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.errors import InvalidNameError, InvalidRunError, ReviewError
from calibration_policy.pipeline import approve_suggestion, modify_suggestion, reject_suggestion, run_update
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.review import ReviewStore, Suggestion
from calibration_policy.stores import open_store
from calibration_policy.target import JsonFileTarget

EQUAL = {"wallet": 0.25, "cluster": 0.25, "token": 0.25, "context": 0.25}
PROPOSED = {"wallet": 0.4, "cluster": 0.3, "token": 0.1, "context": 0.2}
T0 = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"suggestions": tmp_path / "suggestions", "archive": tmp_path / "archive", "history": tmp_path / "runs"}


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "scoring_weights.json"
    path.write_text(json.dumps(EQUAL))
    return path


@pytest.fixture
def target(weights_file: Path):
    return weights_target(path=weights_file)


@pytest.fixture
def store(dirs) -> ReviewStore:
    return ReviewStore(dirs["suggestions"])


def propose(
    store: ReviewStore,
    target,
    values: dict[str, float] | None = None,
    when: datetime | None = None,
    domain: str = "scoring_weights",
    current: dict[str, float] | None = None,
    run_id: str | None = None,
) -> Suggestion:
    return store.propose(
        Suggestion(
            domain=domain,
            target=target.name,
            underlying="SCORING" if domain == "scoring_weights" else "SPY",
            created_at=when or datetime.now(UTC),
            values=values or PROPOSED,
            current_values=current or EQUAL,
            reason="Suggested: test",
            run_id=run_id,
        )
    )


# -- propose -------------------------------------------------------------------------------------


def test_a_proposed_suggestion_is_pending_and_durable(store, target, dirs):
    item = propose(store, target)
    assert item.status == "pending" and item.suggestion_id.endswith("_scoring_weights")
    again = ReviewStore(dirs["suggestions"]).get(item.suggestion_id)  # a new store: read from disk
    assert again.status == "pending" and again.values == PROPOSED and again.reviewed_at is None
    assert json.loads((dirs["suggestions"] / f"{item.suggestion_id}.json").read_text())["status"] == "pending"


def test_proposing_invalid_values_is_refused_and_writes_nothing(store, target, dirs):
    with pytest.raises(InvalidRunError, match="token weight 1.3 is outside 0–1"):
        propose(store, target, {"wallet": 0.1, "cluster": 0.1, "token": 1.3, "context": 0.0})
    assert not dirs["suggestions"].exists() or not list(dirs["suggestions"].glob("*.json"))


def test_a_newer_suggestion_expires_the_older_pending_one(store, target):
    first = propose(store, target, when=T0)
    second = propose(store, target, when=T0 + timedelta(hours=1))
    old = store.get(first.suggestion_id)
    assert old.status == "expired" and old.reviewed_at is not None
    assert old.expired_reason == f"superseded by a newer suggestion ({second.suggestion_id}) before anyone reviewed it"
    assert store.get(second.suggestion_id).status == "pending"
    with pytest.raises(ReviewError, match=r"was already expired at .*; nothing was changed"):
        approve_suggestion(
            first.suggestion_id, target=target, context=Context.build(suggestions_dir=store, actor="ana")
        )


def test_a_late_older_suggestion_does_not_expire_a_newer_one(store, target):
    """Two proposals racing must not expire each other: only older ones expire."""
    newer = propose(store, target, when=T0 + timedelta(hours=1))
    older = propose(store, target, when=T0)
    assert store.get(newer.suggestion_id).status == "pending"
    assert store.get(older.suggestion_id).status == "pending"


def test_expiry_only_touches_the_same_target(store, target, tmp_path):
    other = JsonFileTarget(tmp_path / "live.json")
    vol = propose(store, other, {"global": 1.1}, domain="vol_surface", current={"global": 1.0})
    propose(store, target)
    assert store.get(vol.suggestion_id).status == "pending"


def test_expire_pending_closes_every_pending_suggestion_of_a_target(store, target):
    first, second = propose(store, target, when=T0), None
    second = store.propose(
        Suggestion(
            domain="scoring_weights",
            target=target.name,
            created_at=T0 - timedelta(hours=1),
            values=PROPOSED,
            current_values=EQUAL,
            reason="late",
        )
    )
    expired = store.expire_pending(target.name, "superseded by an automatic change")
    assert {s.suggestion_id for s in expired} == {first.suggestion_id, second.suggestion_id}
    assert {s.status for s in store.all(target=target.name)} == {"expired"}
    assert store.all(status="pending") == []


@pytest.mark.parametrize("count", [10, 12, 23])
def test_a_frozen_clock_leaves_exactly_the_newest_suggestion_pending(store, target, count):
    """Issue 11, D9: ids sharing a stamp end in _2 … _10; as text "_10" < "_9", so from the 10th
    on the stale one stayed pending and was listed as the newest."""
    made = [propose(store, target, when=T0) for _ in range(count)]
    assert made[1].suggestion_id.endswith("_2") and made[-1].suggestion_id.endswith(f"_{count}")
    pending = store.all(status="pending")
    assert [s.suggestion_id for s in pending] == [made[-1].suggestion_id]
    listed = store.all(target=target.name)
    assert [s.suggestion_id for s in listed] == [s.suggestion_id for s in made]  # oldest first, numerically
    assert all(s.status == "expired" for s in listed[:-1])


def test_a_target_name_ending_in_digits_still_orders_numerically(store, tmp_path):
    target = JsonFileTarget(tmp_path / "live_2.json", name="live_2")
    (tmp_path / "live_2.json").write_text(json.dumps({"global": 1.0}))
    made = [
        store.propose(
            Suggestion(
                domain="vol_surface",
                target="live_2",
                created_at=T0,
                values={"global": 1.1 + i / 100},
                current_values={"global": 1.0},
                reason="x",
            )
        )
        for i in range(11)
    ]
    assert made[0].suggestion_id.endswith("_live_2") and made[-1].suggestion_id.endswith("_live_2_11")
    assert [s.suggestion_id for s in store.all(target=target.name)] == [s.suggestion_id for s in made]
    assert [s.suggestion_id for s in store.all(status="pending")] == [made[-1].suggestion_id]


@pytest.mark.parametrize("created_at", ["2025-12-01T09:30:00", "0001-01-01T00:00:00+05:00"])
def test_a_suggestion_with_an_unusable_time_is_skipped(store, target, dirs, created_at):
    """A naive created_at made every comparison of suggestions raise TypeError (issue 11, D5)."""
    good = propose(store, target, when=T0)
    data = json.loads((dirs["suggestions"] / f"{good.suggestion_id}.json").read_text())
    data["created_at"] = created_at
    (dirs["suggestions"] / "20300101T000000.000000Z_scoring_weights.json").write_text(json.dumps(data))
    assert [s.suggestion_id for s in store.all()] == [good.suggestion_id]
    assert propose(store, target, when=T0 + timedelta(hours=1)).status == "pending"
    assert store.get(good.suggestion_id).status == "expired"


# -- approve ---------------------------------------------------------------------------------------


def test_approving_applies_archives_and_records_who_when_and_why(store, target, weights_file, dirs):
    item = propose(store, target)
    before = datetime.now(UTC)
    done = approve_suggestion(
        item.suggestion_id,
        target=target,
        notes="looks right",
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=dirs["archive"]),
    )
    assert done.status == "approved" and done.reviewer == "ana" and done.notes == "looks right"
    assert done.reviewed_at >= before and done.applied_at == done.reviewed_at
    assert done.applied_values == PROPOSED
    assert json.loads(weights_file.read_text()) == PROPOSED
    (entry,) = Archive(dirs["archive"], target.name).entries()
    assert entry.change_id == done.change_id and entry.kind == "approve" and entry.actor == "ana"
    assert entry.previous_values == EQUAL and entry.new_values == PROPOSED
    assert entry.suggestion_id == item.suggestion_id and entry.domain == "scoring_weights"
    assert entry.reason == f"Applied: suggestion {item.suggestion_id} approved by ana (looks right)"
    assert ReviewStore(dirs["suggestions"]).get(item.suggestion_id).status == "approved"


def test_approving_twice_says_who_already_did_and_changes_nothing(store, target, weights_file, dirs):
    item = propose(store, target)
    approve_suggestion(
        item.suggestion_id,
        target=target,
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=dirs["archive"]),
    )
    before = digest(weights_file)
    with pytest.raises(
        ReviewError, match=r"was already approved at \d{4}-\d\d-\d\d \d\d:\d\d UTC by ana; nothing was changed"
    ):
        approve_suggestion(
            item.suggestion_id,
            target=target,
            context=Context.build(suggestions_dir=store, actor="bob", archive_dir=dirs["archive"]),
        )
    with pytest.raises(ReviewError, match="already approved"):
        reject_suggestion(item.suggestion_id, context=Context.build(suggestions_dir=store, actor="bob"))
    assert digest(weights_file) == before
    assert len(Archive(dirs["archive"], target.name).entries()) == 1


def test_approving_marks_the_run_behind_the_suggestion_applied(dirs, tmp_path, make_result):
    live = tmp_path / "vol.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live)
    outcome = run_update(
        make_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=target,
        context=Context.build(
            policy=CalibrationUpdatePolicy(require_approval=True),
            history_dir=dirs["history"],
            archive_dir=dirs["archive"],
            suggestions_dir=dirs["suggestions"],
        ),
    )
    assert outcome.run.status == "pending" and not outcome.applied
    store = ReviewStore(dirs["suggestions"])
    approve_suggestion(
        outcome.run.pending_suggestion,
        target=target,
        context=Context.build(
            suggestions_dir=store, actor="ana", archive_dir=dirs["archive"], history_dir=dirs["history"]
        ),
    )
    run = open_store(dirs["history"]).get(outcome.run.run_id)
    assert run.status == "applied" and run.applied_reason.startswith(
        f"Applied: suggestion {outcome.run.pending_suggestion} approved by ana"
    )
    assert json.loads(live.read_text())["global"] == pytest.approx(1.2)


def test_a_suggestion_cannot_be_applied_to_another_target(store, target, tmp_path, weights_file):
    item = propose(store, target)
    other = weights_target(path=tmp_path / "other.json")
    (tmp_path / "other.json").write_text(json.dumps(EQUAL))
    with pytest.raises(ReviewError, match="suggests weights for scoring_weights, not for other; nothing was changed"):
        approve_suggestion(item.suggestion_id, target=other, context=Context.build(suggestions_dir=store, actor="ana"))
    assert store.get(item.suggestion_id).status == "pending"


# -- modify and reject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        ({"wallet": 0.25, "cluster": 0.25, "token": 1.3, "context": 0.2}, "token weight 1.3 is outside 0–1"),
        ({"wallet": 0.4, "cluster": 0.3, "token": 0.22, "context": 0.2}, "weights sum to 1.12, not 1"),
        ({"wallet": -0.1, "cluster": 0.5, "token": 0.3, "context": 0.3}, "wallet weight -0.1 is outside 0–1"),
        ({"wallet": 0.5, "cluster": 0.5}, "The token and context weights are missing"),
        ({"wallet": 0.5, "cluster": 0.5, "token": 0.0, "context": 0.0, "age": 0.0}, "'age' is not a scoring factor"),
        ({"wallet": "0.5", "cluster": 0.5, "token": 0.0, "context": 0.0}, "wallet weight must be a number"),
        ({"wallet": float("nan"), "cluster": 0.5, "token": 0.0, "context": 0.0}, "wallet weight is nan"),
    ],
)
def test_modify_validates_and_names_the_offending_value(store, target, weights_file, values, message):
    item = propose(store, target)
    before = digest(weights_file)
    with pytest.raises(InvalidRunError, match=message):
        modify_suggestion(
            item.suggestion_id, values, target=target, context=Context.build(suggestions_dir=store, actor="ana")
        )
    assert digest(weights_file) == before
    assert store.get(item.suggestion_id).status == "pending"  # a typo does not use up the review


def test_modify_applies_the_reviewers_values(store, target, weights_file, dirs):
    item = propose(store, target)
    mine = {"wallet": 0.35, "cluster": 0.35, "token": 0.1, "context": 0.2}
    done = modify_suggestion(
        item.suggestion_id,
        mine,
        target=target,
        notes="less on wallet",
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=dirs["archive"]),
    )
    assert done.status == "modified" and done.applied_values == mine and done.values == PROPOSED
    assert json.loads(weights_file.read_text()) == mine
    (entry,) = Archive(dirs["archive"], target.name).entries()
    assert entry.kind == "modify" and entry.reason.endswith("modified and approved by ana (less on wallet)")


def test_modify_accepts_a_sum_off_by_float_noise_only(store, target):
    item = propose(store, target)
    noisy = {"wallet": 0.1, "cluster": 0.2, "token": 0.3, "context": 0.4}  # sums to 1.0000000000000002
    assert (
        modify_suggestion(
            item.suggestion_id, noisy, target=target, context=Context.build(suggestions_dir=store, actor="ana")
        ).status
        == "modified"
    )
    item = propose(store, target)
    with pytest.raises(InvalidRunError, match="weights sum to 1.000001, not 1"):
        modify_suggestion(
            item.suggestion_id,
            {**noisy, "context": 0.400001},
            target=target,
            context=Context.build(suggestions_dir=store, actor="ana"),
        )


def test_rejecting_leaves_the_live_values_alone(store, target, weights_file, dirs):
    item = propose(store, target)
    before = digest(weights_file)
    done = reject_suggestion(
        item.suggestion_id, notes="too big a move", context=Context.build(suggestions_dir=store, actor="bob")
    )
    assert done.status == "rejected" and done.reviewer == "bob" and done.notes == "too big a move" and done.reviewed_at
    assert done.applied_values is None and done.change_id is None
    assert digest(weights_file) == before and Archive(dirs["archive"], target.name).entries() == []
    with pytest.raises(ReviewError, match="already rejected at .* by bob"):
        approve_suggestion(item.suggestion_id, target=target, context=Context.build(suggestions_dir=store, actor="ana"))


@pytest.mark.parametrize("reviewer", ["", "   ", "x" * 101, None, "a\x00b"])
def test_a_reviewer_must_say_who_they_are(store, target, reviewer):
    item = propose(store, target)
    with pytest.raises(ReviewError, match="Say who is reviewing"):
        reject_suggestion(item.suggestion_id, context=Context.build(suggestions_dir=store, actor=reviewer))
    assert store.get(item.suggestion_id).status == "pending"


def test_notes_are_bounded(store, target):
    item = propose(store, target)
    with pytest.raises(ReviewError, match="at most 2,000 characters"):
        reject_suggestion(
            item.suggestion_id, notes="n" * 2001, context=Context.build(suggestions_dir=store, actor="ana")
        )


def test_unknown_or_hostile_ids_are_plain_errors(store, target):
    with pytest.raises(ReviewError, match="There is no suggestion 20250101T000000.000000Z_x"):
        store.get("20250101T000000.000000Z_x")
    for hostile in ("../x", "a/b", "..", ""):
        with pytest.raises(InvalidNameError):
            approve_suggestion(hostile, target=target, context=Context.build(suggestions_dir=store, actor="ana"))


def test_an_unreadable_suggestion_file_is_skipped_in_listings(store, target, dirs):
    item = propose(store, target)
    (dirs["suggestions"] / "20250101T000000.000000Z_broken.json").write_text("{not json")
    assert [s.suggestion_id for s in store.all()] == [item.suggestion_id]
    with pytest.raises(ReviewError, match="is unreadable"):
        store.get("20250101T000000.000000Z_broken")


# -- exactly once, across processes ----------------------------------------------------------------


def _race(args: tuple[str, str, str, str, str, int, Any]) -> tuple[str, str]:
    """One reviewer process: wait for the others, then approve, modify or reject."""
    suggestions, archive, weights, suggestion_id, action, k, barrier = args
    from calibration_policy.default_plugins.scoring_weights.domain import weights_target
    from calibration_policy.review import ReviewStore

    store, target = ReviewStore(suggestions), weights_target(path=weights)
    barrier.wait()
    try:
        if action == "approve":
            item = approve_suggestion(
                suggestion_id,
                target=target,
                context=Context.build(suggestions_dir=store, actor=f"r{k}", archive_dir=archive),
            )
        elif action == "modify":
            item = modify_suggestion(
                suggestion_id,
                {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1},
                target=target,
                context=Context.build(suggestions_dir=store, actor=f"r{k}", archive_dir=archive),
            )
        else:
            item = reject_suggestion(suggestion_id, context=Context.build(suggestions_dir=store, actor=f"r{k}"))
        return "won", item.status
    except ReviewError as error:
        return "lost", str(error)


@pytest.mark.parametrize(
    "actions",
    [
        ["approve"] * 6,
        ["approve", "reject", "modify", "approve", "reject", "modify"],
    ],
)
def test_racing_reviewers_in_separate_processes_process_a_suggestion_exactly_once(
    store, target, weights_file, dirs, actions
):
    item = propose(store, target)
    context = multiprocessing.get_context("fork")
    barrier = context.Manager().Barrier(len(actions))
    jobs = [
        (str(dirs["suggestions"]), str(dirs["archive"]), str(weights_file), item.suggestion_id, action, k, barrier)
        for k, action in enumerate(actions)
    ]
    with context.Pool(len(actions)) as pool:
        results = pool.map(_race, jobs)
    winners = [status for outcome, status in results if outcome == "won"]
    losers = [message for outcome, message in results if outcome == "lost"]
    assert len(winners) == 1, results
    assert all(f"was already {winners[0]} at" in message and "nothing was changed" in message for message in losers), (
        losers
    )
    final = store.get(item.suggestion_id)
    assert final.status == winners[0]
    entries = Archive(dirs["archive"], target.name).entries()
    if final.status == "rejected":
        assert entries == [] and json.loads(weights_file.read_text()) == EQUAL
    else:
        assert len(entries) == 1 and json.loads(weights_file.read_text()) == final.applied_values


# -- rollback and as-of ----------------------------------------------------------------------------


def approve_values(store, target, dirs, values) -> Suggestion:
    item = propose(store, target, values)
    return approve_suggestion(
        item.suggestion_id,
        target=target,
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=dirs["archive"]),
    )


def test_rollback_to_an_archived_set_is_itself_an_archived_change(store, target, weights_file, dirs):
    first = approve_values(store, target, dirs, PROPOSED)
    second = approve_values(store, target, dirs, {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1})
    entry = rollback(target, first.change_id, context=Context.build(archive_dir=dirs["archive"], actor="ana"))
    assert json.loads(weights_file.read_text()) == PROPOSED
    assert entry.kind == "rollback" and entry.actor == "ana" and entry.domain == "scoring_weights"
    assert entry.previous_values == second.applied_values and entry.new_values == PROPOSED
    since = Archive(dirs["archive"], target.name).entries()[0].at
    assert entry.reason == f"Applied: rolled back to the weights of {since:%Y-%m-%d %H:%M} UTC by ana"
    periods = Archive(dirs["archive"], target.name).periods()
    assert [p.values for p in periods] == [EQUAL, PROPOSED, second.applied_values, PROPOSED]
    assert periods[-1].change.change_id == entry.change_id and periods[-1].until is None


def test_rollback_to_the_original_and_the_wording_for_iv_multipliers(store, target, weights_file, dirs, tmp_path):
    approve_values(store, target, dirs, PROPOSED)
    entry = rollback(target, "original", context=Context.build(archive_dir=dirs["archive"], actor="ana"))
    assert entry.reason == "Applied: rolled back to the original weights by ana"
    assert json.loads(weights_file.read_text()) == EQUAL
    live = tmp_path / "vol.json"
    live.write_text(json.dumps({"global": 1.0}))
    vol = JsonFileTarget(live)
    item = propose(store, vol, {"global": 1.1}, domain="vol_surface", current={"global": 1.0})
    approve_suggestion(
        item.suggestion_id,
        target=vol,
        context=Context.build(suggestions_dir=store, actor="ana", archive_dir=dirs["archive"]),
    )
    assert (
        rollback(vol, "original", context=Context.build(archive_dir=dirs["archive"], actor="bo")).reason
        == "Applied: rolled back to the original IV multipliers by bo"
    )


def test_rollback_to_an_unknown_set_lists_the_known_ones(store, target, weights_file, dirs):
    with pytest.raises(ReviewError, match=r"no archived value set '20250101T000000.000000Z'.*known: \(none yet\)"):
        rollback(target, "20250101T000000.000000Z", context=Context.build(archive_dir=dirs["archive"], actor="ana"))
    done = approve_values(store, target, dirs, PROPOSED)
    before = digest(weights_file)
    with pytest.raises(ReviewError, match=f"known: original, {done.change_id}"):
        rollback(target, "20250101T000000.000000Z", context=Context.build(archive_dir=dirs["archive"], actor="ana"))
    with pytest.raises(InvalidNameError):
        rollback(target, "../etc", context=Context.build(archive_dir=dirs["archive"], actor="ana"))
    assert digest(weights_file) == before


def test_as_of_answers_what_was_live_at_any_moment(store, target, dirs):
    first = approve_values(store, target, dirs, PROPOSED)
    second = approve_values(store, target, dirs, {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1})
    archive = Archive(dirs["archive"], target.name)
    t1, t2 = (e.at for e in archive.entries())
    assert archive.as_of(t1 - timedelta(days=30)).values == EQUAL  # the original, live before records began
    assert archive.as_of(t1).values == PROPOSED  # a change counts from its own moment
    assert archive.as_of(t2 - timedelta(microseconds=1)).change.change_id == first.change_id
    assert archive.as_of(t2 + timedelta(days=365)).change.change_id == second.change_id
    with pytest.raises(ValueError, match="timezone-aware"):
        archive.as_of(datetime(2025, 12, 1))
    assert Archive(dirs["archive"], "never_changed").as_of(t1) is None


def test_an_approval_interrupted_after_the_config_write_is_not_applied_twice(tmp_path, monkeypatch):
    """A crash between making the values live and saving the suggestion must not double-apply."""
    import json as _json

    from calibration_policy.archive import Archive, now_utc
    from calibration_policy.review import ReviewStore, Suggestion
    from calibration_policy.target import JsonFileTarget

    live = tmp_path / "live.json"
    live.write_text(_json.dumps({"global": 1.0}))
    target = JsonFileTarget(live)
    store = ReviewStore(tmp_path / "suggestions")
    item = store.propose(
        Suggestion(
            domain="vol_surface",
            target=target.name,
            created_at=now_utc(),
            values={"global": 1.2},
            current_values={"global": 1.0},
            reason="test",
        )
    )
    real_save = ReviewStore._save
    calls = {"n": 0}

    def crash_once(self, suggestion):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real_save(self, suggestion)

    monkeypatch.setattr(ReviewStore, "_save", crash_once)
    with pytest.raises(OSError):
        approve_suggestion(
            item.suggestion_id,
            target=target,
            context=Context.build(suggestions_dir=store, actor="ana", archive_dir=tmp_path / "archive"),
        )
    # The save failed after the values went live: the governor settled the change at once (its intent
    # says what it did), so the suggestion tells the truth; approving again changes nothing.
    assert store.get(item.suggestion_id).status == "approved"
    with pytest.raises(ReviewError, match="already approved"):
        approve_suggestion(
            item.suggestion_id,
            target=target,
            context=Context.build(suggestions_dir=store, actor="ana", archive_dir=tmp_path / "archive"),
        )
    assert len(Archive(tmp_path / "archive", target.name).entries()) == 1  # the values went live once
