"""Watch after apply: the runs that follow a change score the new live values and the old ones on the same data.

A change is judged once before it goes live; the watch judges it again afterwards. Each of the next
``watch_runs`` runs of the target's underlying scores both value sets with the domain's
:meth:`~calibration_policy.domain.Domain.score` (lower is better), a *paired* comparison: the new values must
not fit worse than ``watch_tolerance`` allows. The verdict:

- **watching**: fewer runs than ``watch_runs`` so far;
- **failed**: the one-sided test (``watch_test``: an exact sign test or an exact Wilcoxon signed-rank) says the
  new values fit worse at ``watch_alpha``, or the hard limit was hit (K runs in a row worse by more than X);
- **passed**: the same test, the other way, says they fit no worse;
- **inconclusive**: neither, too few runs before the next change replaced it, or a run that cannot be scored.
  Never an automatic roll back.

Verdicts are derived from the archive and the history, so they are the same on every read and after any crash;
what the watch *did* is durable on the archive entry of its roll back (``watch_of``: the change it undid), which is
also what keeps the same watch from rolling back twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np

from .apply import apply_values
from .archive import ArchiveEntry, now_utc
from .errors import HistoryError, PermissionDeniedError
from .history import cursor_of
from .models import CalibrationRun
from .plugins import get_domain
from .stores import open_archive, open_store

State = Literal["watching", "passed", "failed", "inconclusive"]
# Changes whose values a watch can question; a roll back restores values that were live before.
WATCHED_KINDS = frozenset({"update", "force", "approve", "modify", "auto"})
WATCH_ACTOR = "watch"


@dataclass(frozen=True)
class Verdict:
    """The watch of one change, with the numbers behind it."""

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
    rolled_back_by: str | None = None  # the watch's roll back (its change id), once done

    @property
    def words(self) -> str:
        """The verdict in one sentence, for status, history and the panel."""
        text = self.reason
        if self.rolled_back_by:
            text += f" Rolled back by the watch ({self.rolled_back_by})."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "words": self.words}


def sign_p(successes: int, n: int) -> float:
    """P(X ≥ successes) for X ~ Binomial(n, ½): the exact one-sided sign test."""
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(successes, n + 1)) / 2.0**n


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
    observed = int(doubled[d > 0].sum())
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    for r in doubled:  # the distribution of the positive rank sum, one rank at a time
        counts[r:] = counts[r:] + counts[: counts.size - r].copy()
    return float(counts[observed:].sum() / counts.sum())


def _test(kind: str, differences: Sequence[float]) -> tuple[float, float]:
    """(p that new fits worse, p that it fits no worse) for the paired differences new − old·(1 + tolerance)."""
    if kind == "wilcoxon":
        return signed_rank_p(differences), signed_rank_p([-x for x in differences])
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


def judge(change: ArchiveEntry, runs: Iterable[CalibrationRun], policy: Any, *, superseded: bool = False) -> Verdict:
    """The verdict on ``change`` from the runs after it (oldest first); ``superseded``: a later change replaced
    its values, so no more runs will come."""
    wanted, tolerance = policy.watch_runs, policy.watch_tolerance
    domain = get_domain(change.domain)
    limit = policy.watch_hard_limit
    differences: list[float] = []
    streak, last = 0, None
    verdict = partial = None
    for run in runs:
        if len(differences) >= wanted:
            break
        new, old = score_run(domain, change.new_values, run), score_run(domain, change.previous_values, run)
        if new is None or old is None:
            partial = _counts(change.change_id, differences, wanted, run.run_id)
            return replace(
                partial,
                state="inconclusive",
                cannot_score=run.run_id,
                reason=f"Cannot score: run {run.run_id} gives no score for the "
                f"{'new' if new is None else 'old'} values, so the watch stops (inconclusive, never a roll back).",
            )
        differences.append(new - old * (1 + tolerance))
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
    p_worse, p_better = _test(policy.watch_test, differences)
    counts = replace(counts, p_worse=p_worse, p_better=p_better)
    test = "sign test" if policy.watch_test == "sign" else "Wilcoxon signed-rank test"
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


def verdicts(archive_dir: Any, history_dir: Any, target_name: str, policy: Any) -> dict[str, Verdict]:
    """Every watched change of a target by change id (none when the watch is off or watches another domain)."""
    if not policy.watch_runs:
        return {}
    entries = open_archive(archive_dir, target_name).entries()
    undone = {entry.watch_of: entry.change_id for entry in entries if getattr(entry, "watch_of", None)}
    found: dict[str, Verdict] = {}
    for i, entry in enumerate(entries):
        if entry.kind not in WATCHED_KINDS or entry.domain != policy.domain:
            continue
        following = entries[i + 1] if i + 1 < len(entries) else None
        verdict = judge(
            entry,
            runs_after(history_dir, entry, following, policy.watch_runs),
            policy,
            superseded=following is not None,
        )
        found[entry.change_id] = replace(verdict, rolled_back_by=undone.get(entry.change_id))
    return found


def latest(archive_dir: Any, history_dir: Any, target_name: str, policy: Any) -> Verdict | None:
    """The watch of the newest watched change (the one a status screen talks about), or None."""
    found = verdicts(archive_dir, history_dir, target_name, policy)
    return list(found.values())[-1] if found else None


def after_run(step: Any, run: CalibrationRun, policy: Any, on_event: Callable[..., Any]) -> Verdict | None:
    """The watch of the target's live change, now that ``run`` is recorded: under the update's lock, before
    its decision (so the run is decided against the values the watch leaves live). A verdict reached by this
    run is told once (an event of kind "watch"); a failed one with ``watch_action = "roll_back"`` rolls back
    through the roll back path, as the actor "watch", unless permissions refuse it (then a person must)."""
    ctx, target = step.ctx, step.target
    if not policy.watch_runs:
        return None
    archive = open_archive(ctx.archive_dir, target.name)
    change = archive.last_change()
    if change is None or change.kind not in WATCHED_KINDS or change.domain != policy.domain:
        return None
    verdict = judge(change, runs_after(ctx.history_dir, change, None, policy.watch_runs), policy)
    reached_now = run.run_id in (verdict.last_run, verdict.cannot_score)
    unsettled = verdict.state == "failed" and policy.watch_action == "roll_back"  # still live: not rolled back yet
    if verdict.state == "watching" or not (reached_now or unsettled):
        return verdict  # nothing new: told when the run that reached it was recorded
    if not reached_now and not _permitted(step, change, policy):
        return verdict  # still waiting for a person (told when it was reached)
    status: str = verdict.state
    words, rolled = verdict.words, None
    if verdict.state == "failed":
        status, words, rolled = _act(step, change, verdict, policy)
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
    )
    return replace(verdict, rolled_back_by=rolled.change_id if rolled is not None else None)


def _act(step: Any, change: ArchiveEntry, verdict: Verdict, policy: Any) -> tuple[str, str, ArchiveEntry | None]:
    """What a failed verdict does: (event status, words, the roll back's archive entry or None)."""
    before = _previous_id(step.ctx, step.target.name, change)
    undo = (
        f"roll {step.target.name} back to {before} (the panel's Undo on change {change.change_id}, "
        f"or: calibration-policy rollback {before} --underlying {change.underlying})"
    )
    if policy.watch_action == "notify":
        return "failed", f"{verdict.words} The watch only tells (watch_action = notify).", None
    if policy.watch_action == "propose_roll_back":
        return "roll_back_proposed", f"{verdict.words} A person decides whether to {undo}.", None
    refused = _refusal(step, change, policy)
    if refused is not None:
        return "roll_back_waiting", f"{verdict.words} {refused} A person must {undo}.", None
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
    return "rolled_back", f"{verdict.words} Rolled back by the watch ({entry.change_id}).", entry


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
    """The id a person rolls back to: the change before ``change``, or ``original``."""
    entries = open_archive(ctx.archive_dir, target_name).entries()
    ids = [entry.change_id for entry in entries]
    at = ids.index(change.change_id) if change.change_id in ids else 0
    return ids[at - 1] if at > 0 else "original"


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
