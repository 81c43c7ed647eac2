"""Watch after apply: the runs that follow a change score the new live values and the old ones on the same data.

A change is judged once before it goes live; the watch judges it again afterwards. Each of the next
``watch_runs`` runs of the target's underlying scores both value sets with the domain's
:meth:`~calibration_policy.domain.Domain.score` (lower is better), a *paired* comparison: the new values must
not fit worse than ``watch_tolerance`` allows. The verdict:

- **watching**: fewer runs than ``watch_runs`` so far;
- **failed**: the one-sided test (``watch_test``: an exact sign test or an exact Wilcoxon signed-rank on the runs'
  scores, or ``permutation_scopes``: an exact sign-flip permutation test on every scope of every run, paired,
  from :meth:`~calibration_policy.domain.Domain.score_parts`, which assumes a run's scopes move independently)
  says the new values fit worse at ``watch_alpha``, or the hard limit was hit (K runs in a row worse by more than
  X);
- **passed**: the same test, the other way, says they fit no worse;
- **inconclusive**: neither, too few runs before the next change replaced it, or a run that cannot be scored.
  Never an automatic roll back.

Each verdict is recorded on the change's archive entry (``watch``) by the governed update that computed it, before
what it leads to (a roll back, a proposed roll back), and what it did is noted after; readers read the record and
never recompute it. A roll back the watch made carries ``watch_of`` (the change it undid) in the archive, so a
process killed between the roll back and its note is finished by the next change (:func:`settle`), once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np

from .apply import apply_values
from .archive import ArchiveEntry, now_utc
from .errors import HistoryError, PermissionDeniedError
from .history import cursor_of
from .humanize import fmt_num
from .models import CalibrationRun
from .plugins import get_domain
from .stores import open_archive, open_reviews, open_store

State = Literal["watching", "passed", "failed", "inconclusive"]
# Changes whose values a watch can question; a roll back restores values that were live before.
WATCHED_KINDS = frozenset({"update", "force", "approve", "modify", "auto"})
WATCH_ACTOR = "watch"
# The tests that pair each scope of each run (Domain.score_parts) instead of each run's one score.
SCOPE_TESTS = frozenset({"permutation_scopes"})
TEST_WORDS = {
    "sign": "sign test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "permutation_scopes": "permutation test",
}


@dataclass(frozen=True)
class Verdict:
    """The watch of one change, with the numbers behind it; recorded on the change's archive entry (``watch``)."""

    change_id: str
    state: State
    runs: int  # runs scored so far
    wanted: int  # watch_runs
    new_better: int  # runs where the new values fit better than the old ones
    new_worse: int  # runs where they fit worse by more than the tolerance
    p_worse: float | None = None
    p_better: float | None = None
    cannot_score: str | None = None  # the run that could not be scored
    last_run: str | None = None  # the run that reached the verdict (or the latest scored)
    reason: str = ""
    rolled_back_by: str | None = None  # the change that put the previous values back, once done
    action: str | None = None  # what a failed verdict does (watch_action when it failed)
    suggestion_id: str | None = None  # the proposed roll back, once proposed
    rolled_back_who: str | None = None  # "the watch", or who approved its proposal
    test: str | None = None  # the watch_test that reached it (None: recorded before verdicts kept it)
    pairs: int | None = None  # paired scores the test pooled: runs, or runs × scopes for a per-scope test

    @property
    def words(self) -> str:
        """The verdict in one sentence, for status, history and the panel."""
        text = self.reason
        if self.rolled_back_by:
            text += f" Rolled back by {self.rolled_back_who or 'the watch'} ({self.rolled_back_by})."
        elif self.suggestion_id:
            text += f" The watch proposed a roll back (suggestion {self.suggestion_id})."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "words": self.words}

    def record(self) -> dict[str, Any]:
        """What the change's archive entry keeps (``watch``)."""
        return asdict(self)


def recorded(entry: ArchiveEntry) -> Verdict | None:
    """The verdict recorded on ``entry`` (None: none yet, or an unreadable one)."""
    data = getattr(entry, "watch", None)
    if not isinstance(data, dict):
        return None
    known = {f.name for f in fields(Verdict)}
    try:
        return Verdict(**{key: value for key, value in data.items() if key in known})
    except TypeError:  # a hand-edited record lacking a field: as if none
        return None


def _record(archive: Any, change: ArchiveEntry, verdict: Verdict) -> ArchiveEntry:
    """Write ``verdict`` on the change's archive entry (nothing when it is recorded already)."""
    if getattr(change, "watch", None) == verdict.record():
        return change
    return archive.mark(change, change.status, watch=verdict.record())


def watched(entry: ArchiveEntry, policy: Any) -> bool:
    """Whether the watch judges ``entry``: a change of the policy's domain whose values a run questions (not a
    roll back, nor an approved proposal of one: they restore values that were live before)."""
    return entry.kind in WATCHED_KINDS and entry.domain == policy.domain and not getattr(entry, "watch_of", None)


def sign_p(successes: int, n: int) -> float:
    """P(X ≥ successes) for X ~ Binomial(n, ½): the exact one-sided sign test."""
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(successes, n + 1)) / 2.0**n


def _flip_p(weights: np.ndarray, positive: np.ndarray) -> float:
    """The share of the 2ⁿ sign patterns of the whole-number ``weights`` whose positive sum is at least the
    observed one (``positive``: which weights are positive): the exact one-sided p-value of a sign-flip test."""
    observed = int(weights[positive].sum())
    chances = np.zeros(int(weights.sum()) + 1)
    chances[0] = 1.0
    for w in weights:  # the distribution of the positive sum, one weight at a time (halved: no overflow)
        w = int(w)
        shifted = chances[: chances.size - w].copy()
        chances *= 0.5
        chances[w:] += 0.5 * shifted
    return float(min(1.0, chances[observed:].sum()))


def signed_rank_p(differences: Sequence[float]) -> float:
    """Exact one-sided Wilcoxon signed-rank p-value that the differences lean positive (zeros dropped,
    tied magnitudes share their mean rank): the share of the 2ⁿ sign patterns whose positive rank sum
    is at least the observed one."""
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    n = d.size
    if n == 0:
        return 1.0
    magnitudes = np.abs(d)
    order = np.argsort(magnitudes, kind="mergesort")
    ranks = np.empty(n)
    ranks[order] = np.arange(1, n + 1)
    for value in np.unique(magnitudes):  # mean ranks for ties
        tied = magnitudes == value
        ranks[tied] = ranks[tied].mean()
    doubled = np.rint(ranks * 2).astype(int)  # mean ranks are halves at worst: integers once doubled
    return _flip_p(doubled, d > 0)


def permutation_p(differences: Sequence[float], resolution: int = 1000) -> float:
    """Exact one-sided sign-flip permutation p-value that the differences lean positive: the share of the 2ⁿ
    sign patterns whose sum is at least the observed one, on the sizes rounded to ``resolution`` steps of the
    largest (fewer steps past 100 differences, so the cost stays bounded). The rounding depends on sizes only,
    never on signs, so the test keeps its exact level; zeros (and sizes that round to 0) are dropped. Unlike
    the sign test it weighs how much worse; unlike Wilcoxon it weighs sizes, not their ranks."""
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    if d.size == 0:
        return 1.0
    magnitudes = np.abs(d)
    steps = max(10, min(resolution, 100_000 // d.size))
    weights = np.rint(magnitudes / magnitudes.max() * steps).astype(int)
    kept = weights > 0
    if not kept.any():
        return 1.0
    return _flip_p(weights[kept], (d > 0)[kept])


def _test(kind: str, differences: Sequence[float]) -> tuple[float, float]:
    """(p that new fits worse, p that it fits no worse) for the paired differences new − old·(1 + tolerance)."""
    if kind == "wilcoxon":
        return signed_rank_p(differences), signed_rank_p([-x for x in differences])
    if kind == "permutation_scopes":
        return permutation_p(differences), permutation_p([-x for x in differences])
    worse = sum(1 for x in differences if x > 0)
    better = sum(1 for x in differences if x < 0)
    return sign_p(worse, worse + better), sign_p(better, worse + better)


def score_run(domain: Any, values: Mapping[str, float], run: CalibrationRun) -> float | None:
    """The domain's score, or None when it raises or gives no finite number (the run cannot be scored)."""
    try:
        result = domain.score(values, run)
    except Exception:  # a plugin's broken score must never roll a change back: the watch says it cannot score
        return None
    if result is None or isinstance(result, bool) or not isinstance(result, (int, float)):
        return None
    return float(result) if math.isfinite(result) else None


def score_parts_run(domain: Any, values: Mapping[str, float], run: CalibrationRun) -> dict[str, float] | None:
    """The domain's score parts (:meth:`~calibration_policy.domain.Domain.score_parts`), or None when it raises,
    gives nothing, or any part is not a finite number (the run cannot be scored)."""
    try:
        result = domain.score_parts(values, run)
    except Exception:  # a plugin's broken score must never roll a change back: the watch says it cannot score
        return None
    if not isinstance(result, Mapping) or not result:
        return None
    parts: dict[str, float] = {}
    for scope, value in result.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        parts[str(scope)] = float(value)
    return parts


def _paired(
    domain: Any, change: ArchiveEntry, run: CalibrationRun, tolerance: float, scopes: bool
) -> tuple[float, float, list[float]] | str:
    """(the new values' score, the old ones', the paired differences the test pools) on ``run``, or which value
    set ("new", "old") it cannot score. Per scope: the scores are the parts' means over the scopes both have,
    and each of those scopes gives one difference new − old·(1 + tolerance)."""
    if not scopes:
        new, old = score_run(domain, change.new_values, run), score_run(domain, change.previous_values, run)
        if new is None or old is None:
            return "new" if new is None else "old"
        return new, old, [new - old * (1 + tolerance)]
    new_parts = score_parts_run(domain, change.new_values, run)
    old_parts = score_parts_run(domain, change.previous_values, run)
    if new_parts is None or old_parts is None:
        return "new" if new_parts is None else "old"
    common = [scope for scope in new_parts if scope in old_parts]
    if not common:
        return "new"
    pairs = [(new_parts[scope], old_parts[scope]) for scope in common]
    new, old = sum(a for a, _ in pairs) / len(pairs), sum(b for _, b in pairs) / len(pairs)
    return new, old, [a - b * (1 + tolerance) for a, b in pairs]


def judge(change: ArchiveEntry, runs: Iterable[CalibrationRun], policy: Any, *, superseded: bool = False) -> Verdict:
    """The verdict on ``change`` from the runs after it (oldest first); ``superseded``: a later change replaced
    its values, so no more runs will come."""
    wanted, tolerance = policy.watch_runs, policy.watch_tolerance
    domain = get_domain(change.domain)
    limit = policy.watch_hard_limit
    scopes = policy.watch_test in SCOPE_TESTS
    differences: list[float] = []  # one per run: new − old·(1 + tolerance)
    pooled: list[float] = []  # what the test pools: the same, or one per scope of each run
    streak, last = 0, None
    verdict = partial = None
    for run in runs:
        if len(differences) >= wanted:
            break
        scored = _paired(domain, change, run, tolerance, scopes)
        if isinstance(scored, str):
            partial = _counts(change.change_id, differences, wanted, run.run_id)
            return replace(
                partial,
                state="inconclusive",
                cannot_score=run.run_id,
                reason=f"Cannot score: run {run.run_id} gives no score for the "
                f"{scored} values, so the watch stops (inconclusive, never a roll back).",
            )
        new, old, paired = scored
        differences.append(new - old * (1 + tolerance))
        pooled.extend(paired)
        last = run.run_id
        streak = streak + 1 if limit is not None and new > old * (1 + limit.worse_by) else 0
        if limit is not None and streak >= limit.runs:
            verdict = replace(
                _counts(change.change_id, differences, wanted, last),
                state="failed",
                reason=f"Failed: the new values fit worse by more than {limit.worse_by:.0%} in {streak} runs in a row "
                f"(the hard limit), after {len(differences)} of {wanted} runs.",
            )
            return verdict
    counts = _counts(change.change_id, differences, wanted, last)
    seen = f"{counts.runs} of {wanted} runs; the new values fit better in {counts.new_better} of {counts.runs}"
    if counts.runs < wanted:
        if superseded:
            return replace(
                counts,
                state="inconclusive",
                reason=f"Inconclusive: only {seen} before the next change replaced them.",
            )
        return replace(counts, state="watching", reason=f"Watching: {seen}.")
    p_worse, p_better = _test(policy.watch_test, pooled)
    counts = replace(counts, p_worse=p_worse, p_better=p_better, test=policy.watch_test, pairs=len(pooled))
    test = TEST_WORDS[policy.watch_test]
    if scopes:
        test += f" on {len(pooled)} paired scope scores"
    if p_worse <= policy.watch_alpha:
        return replace(
            counts,
            state="failed",
            reason=f"Failed: {seen}, worse by more than {tolerance:.0%} in {counts.new_worse} "
            f"({test} p = {p_worse:.3g} ≤ {policy.watch_alpha:g}).",
        )
    if p_better <= policy.watch_alpha:
        return replace(
            counts, state="passed", reason=f"Passed: {seen} ({test} p = {p_better:.3g} ≤ {policy.watch_alpha:g})."
        )
    return replace(
        counts,
        state="inconclusive",
        reason=f"Inconclusive: {seen}; neither worse nor no worse is clear ({test} p = {p_worse:.3g} "
        f"and {p_better:.3g}, both above {policy.watch_alpha:g}).",
    )


def _counts(change_id: str, differences: list[float], wanted: int, last: str | None) -> Verdict:
    return Verdict(
        change_id=change_id,
        state="watching",
        runs=len(differences),
        wanted=wanted,
        new_better=sum(1 for x in differences if x < 0),
        new_worse=sum(1 for x in differences if x > 0),
        last_run=last,
    )


def runs_after(history_dir: Any, change: ArchiveEntry, until: ArchiveEntry | None, wanted: int) -> list[CalibrationRun]:
    """The runs of the change's underlying and domain made while its values were live, oldest first (at most
    ``wanted``): after the run that made it, before the next change."""
    if not change.underlying or not wanted:
        return []
    start = change.live_from
    end = until.live_from if until is not None else None
    store = open_store(history_dir)

    def counted(run: CalibrationRun) -> bool:
        return run.timestamp > start and run.run_id != change.run_id and run.domain == change.domain

    if not change.run_id:  # a change no run made (a roll back's redo): the runs stamped after it
        far = end or now_utc() + timedelta(days=36_500)
        return [run for run in store.between(change.underlying, start, far) if counted(run) and run.timestamp < far][
            :wanted
        ]
    # Keyset pages after the change's own run: an old change costs as little as a new one.
    runs: list[CalibrationRun] = []
    cursor: str | None = change.run_id
    while len(runs) < wanted:
        try:
            page = store.oldest(change.underlying, limit=wanted + 1, after=cursor)
        except HistoryError:  # the change's run is gone from the history: nothing to watch with
            return []
        for run in page:
            if end is not None and run.timestamp >= end:
                return runs
            if counted(run):
                runs.append(run)
        if len(page) < wanted + 1:
            break
        cursor = cursor_of(page[-1])
    return runs[:wanted]


def verdicts(archive_dir: Any, history_dir: Any, target_name: str, policy: Any = None) -> dict[str, Verdict]:
    """Every recorded verdict of a target's changes, by change id: what the updates that computed them wrote on
    the changes (read, never recomputed, so every reader sees what the watch acted on). ``history_dir`` and
    ``policy`` are not needed any more; they stay for callers that pass them."""
    entries = open_archive(archive_dir, target_name).entries()
    undone = {entry.watch_of: entry for entry in entries if getattr(entry, "watch_of", None)}
    found: dict[str, Verdict] = {}
    for entry in entries:
        verdict = recorded(entry)
        if verdict is None:
            continue
        undo = undone.get(entry.change_id)
        if undo is not None and verdict.rolled_back_by is None:  # killed before it was noted: the archive has it
            verdict = replace(verdict, rolled_back_by=undo.change_id, rolled_back_who=_who_undid(undo))
        found[entry.change_id] = verdict
    return found


def latest(archive_dir: Any, history_dir: Any, target_name: str, policy: Any = None) -> Verdict | None:
    """The watch of the newest watched change (the one a status screen talks about), or None."""
    found = verdicts(archive_dir, history_dir, target_name, policy)
    return list(found.values())[-1] if found else None


def _who_undid(entry: ArchiveEntry) -> str:
    return "the watch" if entry.actor == WATCH_ACTOR else f"{entry.by or entry.actor}, approving the watch's proposal"


def settle(step: Any) -> None:
    """After any change of a target (the governor calls it, inside the change): bring the verdicts recorded on
    its newest changes up to date. A change that just went live starts "Watching: 0 of N runs"; a change a
    newer one replaced while still watched is inconclusive; a roll back the watch made (or a person approved)
    is noted on the change it undid, also when the process was killed between the two writes."""
    ctx, target = step.ctx, step.target
    policy = ctx.rules_of_changes
    if target is None or not getattr(policy, "watch_runs", 0) or getattr(step, "watch_settled", False):
        return  # no watch, or after_run found the newest change settled and nothing newer was archived since
    archive = open_archive(ctx.archive_dir, target.name)
    newest = archive.last_change()
    if newest is None or (watched(newest, policy) and recorded(newest) is not None):
        # Settled already: a watched change's verdict is first recorded by this loop, which settles the older
        # changes before it (after_run settles first when it meets an unrecorded one), so one read, not three.
        return
    _settle_recent(archive, ctx, target.name, policy)


def _settle_recent(archive: Any, ctx: Any, target_name: str, policy: Any) -> None:
    entries = archive.recent(3)
    for i, entry in enumerate(entries):
        undone = getattr(entry, "watch_of", None)
        if undone:
            _note_undone(archive, entries, undone, entry)
            continue
        if not watched(entry, policy):
            continue
        known = recorded(entry)
        following = entries[i + 1] if i + 1 < len(entries) else None
        if known is not None and following is not None and known.suggestion_id and not known.rolled_back_by:
            _expire_proposal(ctx, target_name, known.suggestion_id, entry, following)
        if known is None or (known.state == "watching" and following is not None):
            runs = runs_after(ctx.history_dir, entry, following, policy.watch_runs)
            _record(archive, entry, judge(entry, runs, policy, superseded=following is not None))


def _expire_proposal(ctx: Any, target_name: str, suggestion_id: str, change: ArchiveEntry, newer: ArchiveEntry) -> None:
    """A proposed roll back of a change that is no longer live would undo the newer one: it expires."""
    reviews = open_reviews(ctx.suggestions_dir)
    try:
        pending = reviews.get(suggestion_id).status == "pending"
    except ValueError:  # gone from the review store: nothing to expire
        return
    if pending:
        reviews.expire_pending(
            target_name,
            f"the change it would roll back ({change.change_id}) is no longer live: {newer.change_id} replaced it",
            only=suggestion_id,
        )


def _note_undone(archive: Any, entries: list[ArchiveEntry], change_id: str, undo: ArchiveEntry) -> None:
    for entry in entries:
        known = recorded(entry) if entry.change_id == change_id else None
        if known is not None and known.rolled_back_by is None:
            _record(archive, entry, replace(known, rolled_back_by=undo.change_id, rolled_back_who=_who_undid(undo)))


def after_run(step: Any, run: CalibrationRun, policy: Any, on_event: Callable[..., Any]) -> Verdict | None:
    """The watch of the target's live change, now that ``run`` is recorded: under the update's lock, before
    its decision (so the run is decided against the values the watch leaves live). The verdict is recorded on
    the change (its archive entry's ``watch``) in this same update; once reached it stands. A verdict is told
    once (an event of kind "watch"); a failed one does its ``watch_action`` once: ``roll_back`` through the
    roll back path as the actor "watch" (unless permissions refuse it: then a person must), or
    ``propose_roll_back``: a pending suggestion to put the previous values back. Killed half way, the next
    update finishes what the recorded verdict says is not done yet."""
    ctx, target = step.ctx, step.target
    if not policy.watch_runs:
        return None
    archive = open_archive(ctx.archive_dir, target.name)
    change = archive.last_change()
    if change is None or not watched(change, policy):
        return None
    known = recorded(change)
    if known is None:  # never recorded (the change that made it was killed first): settle the older ones too
        _settle_recent(archive, ctx, target.name, policy)
        change = archive.last_change() or change
        known = recorded(change)
    # The newest change is recorded now (below, if not yet), so settle has nothing left unless one is archived.
    step.watch_settled = watched(change, ctx.rules_of_changes)
    fresh = known is None or known.state == "watching"
    if fresh:
        verdict = judge(change, runs_after(ctx.history_dir, change, None, policy.watch_runs), policy)
        if verdict.state == "failed":
            verdict = replace(verdict, action=policy.watch_action)
        change = _record(archive, change, verdict)  # durable before anything it leads to
    else:
        assert known is not None
        verdict = known
    if verdict.state == "watching":
        return verdict
    undone = verdict.state == "failed" and (
        (verdict.action == "roll_back" and verdict.rolled_back_by is None)
        or (verdict.action == "propose_roll_back" and verdict.suggestion_id is None)
    )
    if not fresh and not undone:
        return verdict  # told, and done, when the run that reached it was recorded
    if not fresh and verdict.action == "roll_back" and not _permitted(step, change, policy):
        return verdict  # still waiting for a person (told when it was reached)
    status: str = verdict.state
    words, rolled = verdict.words, None
    if verdict.state == "failed":
        status, words, rolled, verdict = _act(step, archive, change, verdict, policy)
        if rolled is not None:
            step.watch_settled = False  # the roll back is the newest change: settle notes it on this one
    on_event(
        kind="watch",
        status=status,
        reason=words,
        actor=WATCH_ACTOR,
        domain=change.domain,
        underlying=change.underlying,
        run_id=run.run_id,
        change_id=change.change_id,
        before=change.new_values if rolled is not None else None,
        after=rolled.new_values if rolled is not None else None,
        suggestion_id=verdict.suggestion_id,
    )
    return verdict


def _act(
    step: Any, archive: Any, change: ArchiveEntry, verdict: Verdict, policy: Any
) -> tuple[str, str, ArchiveEntry | None, Verdict]:
    """What a failed verdict does: (event status, words, the roll back's archive entry or None, the verdict as
    recorded now)."""
    before = _previous_id(step.ctx, step.target.name, change)
    undo = (
        f"roll {step.target.name} back to {before} (the panel's Undo on change {change.change_id}, "
        f"or: calibration-policy rollback {before} --underlying {change.underlying})"
    )
    if verdict.action == "notify":
        return "failed", f"{verdict.words} The watch only tells (watch_action = notify).", None, verdict
    if verdict.action == "propose_roll_back":
        item = _proposal(step, change, verdict)
        verdict = replace(verdict, suggestion_id=item.suggestion_id)
        _record(archive, change, verdict)
        return (
            "roll_back_proposed",
            f"{verdict.reason} Suggestion {item.suggestion_id} waits for a person to approve the roll back.",
            None,
            verdict,
        )
    refused = _refusal(step, change, policy)
    if refused is not None:
        return "roll_back_waiting", f"{verdict.words} {refused} A person must {undo}.", None, verdict
    what = get_domain(change.domain).parameter_label_plural
    entry = apply_values(
        step.target,
        None,
        snapshot=change.previous_snapshot,
        archive_dir=step.ctx.archive_dir,
        kind="rollback",
        already_locked=True,
        reason=f"Applied: rolled back to the {what} before {change.change_id} by the watch. {verdict.reason}",
        actor=WATCH_ACTOR,
        domain=change.domain,
        via="watch",
        by=WATCH_ACTOR,
        underlying=change.underlying,
        watch_of=change.change_id,
        watch_verdict=verdict.reason,
    )
    verdict = replace(verdict, rolled_back_by=entry.change_id, rolled_back_who="the watch")
    _record(archive, archive_entry(archive, change), verdict)
    return "rolled_back", verdict.words, entry, verdict


def archive_entry(archive: Any, change: ArchiveEntry) -> ArchiveEntry:
    """``change`` as the archive has it now (a roll back was archived since it was read)."""
    return next((e for e in archive.recent(4) if e.change_id == change.change_id), change)


def change_when(change: ArchiveEntry) -> str:
    """ "10 Dec at 15:30 UTC": when a change's values went live, as the watch's messages say it."""
    return f"{change.live_from.day} {change.live_from:%b at %H:%M} UTC"


def worse_words(verdict: Verdict, after: str) -> str:
    """ "the new values fit worse on 5 of 5 runs <after> (p = 0.031)": why a verdict failed, with its numbers."""
    how = f"the new values fit worse on {verdict.new_worse} of {verdict.runs} runs {after}"
    if verdict.p_worse is None:  # the hard limit
        return how + ", the last ones in a row by more than the hard limit allows"
    return how + f" (p = {verdict.p_worse:.2g})"


def proposal_reason(change: ArchiveEntry, verdict: Verdict) -> str:
    """Why the watch proposes a roll back, with its numbers and the values approving it puts back."""
    domain = get_domain(change.domain)
    values = ", ".join(
        f"{domain.scope_label(scope)} {fmt_num(value)}"
        for scope, value in sorted(change.previous_values.items(), key=lambda item: (item[0] != "global", item[0]))
    )  # global first, then by name: the same words on every store (a database may keep keys in its own order)
    since = f"since the change of {change_when(change)} ({change.change_id})"
    return f"The watch failed: {worse_words(verdict, since)}; approving puts back {values}."


def _proposal(step: Any, change: ArchiveEntry, verdict: Verdict) -> Any:
    """The pending suggestion to put back the values before ``change`` (the one already proposed, if a killed
    update proposed it before noting it): reviewed like any suggestion, and superseding older pending ones."""
    from .review import Suggestion

    reviews = open_reviews(step.ctx.suggestions_dir)
    for item in reviews.all(target=step.target.name):
        if (item.details or {}).get("watch_of") == change.change_id:
            return item
    rules = step.ctx.rules()
    item, superseded = reviews.propose_superseding(
        Suggestion(
            domain=change.domain,
            target=step.target.name,
            underlying=change.underlying,
            created_at=now_utc(),
            values=dict(change.previous_values),
            current_values=dict(change.new_values),
            reason=proposal_reason(change, verdict),
            details={"watch_of": change.change_id, "watch": verdict.record()},
            proposed_by=WATCH_ACTOR,
            proposed_via="watch",
            required_approvals=getattr(rules, "required_approvals", 1),
            distinct_approver=bool(getattr(rules, "require_distinct_approver", False)),
        )
    )
    if superseded:
        from .steps import decide_runs_of

        decide_runs_of(superseded, step.ctx.history_dir, step.ctx.suggestions_dir)
    return item


def _refusal(step: Any, change: ArchiveEntry, policy: Any) -> str | None:
    """Why the permissions refuse the watch's roll back (the same check as a person's), or None."""
    try:
        replace(step.ctx, actor=WATCH_ACTOR, via="watch").check("roll_back", change.domain, policy)
    except PermissionDeniedError as refused:
        return str(refused)
    return None


def _permitted(step: Any, change: ArchiveEntry, policy: Any) -> bool:
    return _refusal(step, change, policy) is None


def _previous_id(ctx: Any, target_name: str, change: ArchiveEntry) -> str:
    """The id a person rolls back to: the change before ``change`` (the live one), or ``original``."""
    ids = [entry.change_id for entry in open_archive(ctx.archive_dir, target_name).recent(2)]
    return ids[0] if len(ids) == 2 and ids[1] == change.change_id else "original"


@dataclass
class ReplayedWatch:
    """The watch during a replay: how many simulated changes it would roll back, and how many of those roll
    backs were wrong (on the runs after the verdict, up to ``watch_runs``, the old values fit worse)."""

    policy: Any
    rolled_back: int = 0
    wrong: int = 0
    _change: ArchiveEntry | None = None
    _runs: list[CalibrationRun] = field(default_factory=list)
    _undone: ArchiveEntry | None = None
    _after: list[CalibrationRun] = field(default_factory=list)

    def run(self, run: CalibrationRun) -> None:
        """Count ``run`` in the watch, as an update does before its decision."""
        if self._undone is not None:
            self._after.append(run)
            if len(self._after) >= self.policy.watch_runs:
                self._settle()
        if self._change is None:
            return
        self._runs.append(run)
        verdict = judge(self._change, self._runs, self.policy)
        if verdict.state == "watching":
            return
        change, self._change, self._runs = self._change, None, []
        if verdict.state == "failed":
            self.rolled_back += 1
            self._undone, self._after = change, []

    def applied(self, run: CalibrationRun, before: Mapping[str, float], after: Mapping[str, float]) -> None:
        """A simulated change went live with ``run``: the watch starts on it (and stops judging the last one)."""
        self._settle()
        self._change = ArchiveEntry.model_construct(
            change_id=run.run_id, domain=run.domain, previous_values=dict(before), new_values=dict(after)
        )
        self._runs = []

    def finish(self) -> tuple[int, int]:
        self._settle()
        return self.rolled_back, self.wrong

    def _settle(self) -> None:
        if self._undone is None:
            return
        domain = get_domain(self._undone.domain)
        old = [score_run(domain, self._undone.previous_values, r) for r in self._after]
        new = [score_run(domain, self._undone.new_values, r) for r in self._after]
        if self._after and None not in old and None not in new and sum(old) > sum(new):  # type: ignore[arg-type]
            self.wrong += 1
        self._undone, self._after = None, []
