"""Watch after apply: how often it catches a bad change, how often it rolls back a good one, what it costs.

    python benchmarks/bench_watch.py                 # 73,000 synthetic runs, then the update cost
    python benchmarks/bench_watch.py --quick         # a smoke run (tests/benchmarks)

**Detection.** A synthetic history of changes, each followed by its runs (``--runs`` in all, ``--runs-per-change``
each). A run recommends the truth with noise (each scope ``truth × (1 + 3 % × N(0, 1))``, 3 scopes, sample size
150–800). Four kinds of change, a quarter each:

- *bad*: the old values are the truth, the new ones are off by δ, chosen so that the new values' expected tracking
  error is the old one's + 10 % ("fit error +10 % after the change");
- *good*: the mirror (the old values off by δ, the new ones the truth): the change improved the fit by as much;
- *neutral*: both off by δ on opposite sides: no better, no worse;
- *far*: the new values 10 % off the truth (a broken recalibration: about 4 × the tracking error).

Each change is judged by :func:`calibration_policy.watch.judge` exactly as an update does, per test (sign and
Wilcoxon on each run's score; permutation_scopes on each scope of each run) and watch length. *Detection within 6
runs*: share of bad (and far) changes failed by the 6th run. *False roll backs*: share of good (and of neutral)
changes failed. Each with its exact 95 % Clopper-Pearson interval.

**When a run's scopes move together.** The history above draws each scope's noise on its own, which a per-scope
test assumes. Real bands of one run share the day's market, so the 6-run tests are measured again on a history
whose scopes are correlated (ρ = 0.5 between any two scopes of a run): a test that pools scopes as if independent
shows it here, in more false roll backs.

**The best possible test (the oracle).** What any test could reach on the same runs: the Neyman–Pearson
likelihood-ratio test that knows the planted distributions (each run's recommendation per scope is
N(truth, (3 % × truth)²), the truth either the old values, a bad change, or the new ones, a good change), told
bad from good on the same 6 runs × 3 scopes at the same false-alarm rate (1 % of good changes rolled back). Its
power in closed form (equal variances: Φ(√k·δ/σ − z₀.₉₉), k = 18 observations) and by simulation with the exact
likelihoods (``--oracle-draws`` each way, the threshold the simulated 99th percentile under a good change).
Then the smallest effect at which the oracle reaches 90 % (δ₉₀ = σ(z₀.₉₉ + z₀.₉₀)/√k, as a fit-error increase),
and the watch measured again on a history planted at that effect.

**Cost.** One run scored (the default score, two value sets) in µs; and a full ``run_update`` with the watch on
vs off, alternating in the same loop on two file histories of the same runs (the baseline): the median difference
is what the watch adds to an update. On a loaded machine that difference drowns in the noise of the whole update, so
the watch's own calls (``after_run`` and ``settle``) are also timed in place, in each update with the watch on.

Writes ``benchmarks/results_watch.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.archive import ArchiveEntry
from calibration_policy.models import CalibrationRun
from calibration_policy.plugins import get_domain
from calibration_policy.watch import judge

HERE = Path(__file__).resolve().parent
START = datetime(2020, 1, 2, 21, tzinfo=UTC)
SCOPES = ("global", "weekly", "monthly")
TRUTH = {"global": 1.05, "weekly": 1.08, "monthly": 1.02}
NOISE = 0.03  # relative noise of one run's recommendation


def expected_abs(delta: float, sigma: float) -> float:
    """E|δ + ε| for ε ~ N(0, σ²)."""
    if sigma == 0:
        return abs(delta)
    z = delta / sigma
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return sigma * 2 * phi + delta * (1 - 2 * 0.5 * math.erfc(z / math.sqrt(2)))


def offset_for(ratio: float) -> float:
    """The relative offset δ (in units of the truth) whose expected tracking error is ``ratio`` × the truth's."""
    low, high = 0.0, 10 * NOISE
    target = ratio * expected_abs(0.0, NOISE)
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if expected_abs(mid, NOISE) < target else (low, mid)
    return (low + high) / 2


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval, by bisection on the binomial tail (numpy, no scipy)."""
    if n == 0:
        return (0.0, 1.0)
    alpha = 1 - level
    ks = np.arange(n + 1)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in ks])

    def tail(p: float, k0: int, upper: bool) -> float:
        if p <= 0:
            return 0.0 if upper else 1.0
        if p >= 1:
            return 1.0 if upper else 0.0
        logs = log_comb + ks * math.log(p) + (n - ks) * math.log1p(-p)
        chosen = logs[k0:] if upper else logs[: k0 + 1]
        return float(np.exp(chosen).sum())

    def solve(f, goal: float) -> float:
        low, high = 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if f(mid) < goal else (low, mid)
        return (low + high) / 2

    lower = 0.0 if successes == 0 else solve(lambda p: tail(p, successes, True), alpha / 2)
    upper = 1.0 if successes == n else solve(lambda p: -tail(p, successes, False), -alpha / 2)
    return (lower, upper)


def rate(successes: int, n: int) -> dict:
    low, high = clopper_pearson(successes, n)
    return {"count": successes, "of": n, "rate": successes / n if n else None, "ci95": [low, high]}


def synthetic(
    total_runs: int, per_change: int, seed: int, ratio: float = 1.10, correlation: float = 0.0
) -> list[tuple[str, ArchiveEntry, list[CalibrationRun]]]:
    """Changes with their following runs; kinds cycle bad, good, neutral, far; a bad change's new values fit
    ``ratio`` × the old ones' expected tracking error. ``correlation``: how much the scopes of one run move
    together (each scope's noise √ρ × a shared draw + √(1 − ρ) × its own; 0: independent)."""
    rng = np.random.default_rng(seed)
    delta = offset_for(ratio)
    off = {s: TRUTH[s] * (1 + delta) for s in SCOPES}
    low = {s: TRUTH[s] * (1 - delta) for s in SCOPES}
    far = {s: TRUTH[s] * 1.10 for s in SCOPES}
    kinds = {"bad": (TRUTH, off), "good": (off, TRUTH), "neutral": (low, off), "far": (TRUTH, far)}
    changes = []
    moment = START
    for i in range(total_runs // per_change):
        kind = ("bad", "good", "neutral", "far")[i % 4]
        old, new = kinds[kind]
        entry = ArchiveEntry(
            change_id=f"c{i}",
            target="bench",
            underlying="SPY",
            kind="update",
            status="committed",
            at=moment,
            reason="bench",
            previous_values=dict(old),
            previous_snapshot=dict(old),
            new_values=dict(new),
            new_snapshot=dict(new),
            calibration_timestamp=moment,
        )
        noise = rng.normal(0.0, NOISE, size=(per_change, len(SCOPES)))
        if correlation:
            shared = rng.normal(0.0, NOISE, size=(per_change, 1))
            noise = math.sqrt(correlation) * shared + math.sqrt(1 - correlation) * noise
        sizes = rng.integers(150, 801, size=per_change)
        runs = []
        for j in range(per_change):
            moment += timedelta(days=1)
            runs.append(
                CalibrationRun.model_construct(
                    run_id=f"r{i}_{j}",
                    timestamp=moment,
                    underlying="SPY",
                    source="bench",
                    recommended_iv_multiplier={s: TRUTH[s] * (1 + float(noise[j, k])) for k, s in enumerate(SCOPES)},
                    sample_size=int(sizes[j]),
                )
            )
        changes.append((kind, entry, runs))
    return changes


def detection(changes, watch_runs: int, test: str, hard_limit) -> dict:
    policy = CalibrationUpdatePolicy(
        watch_runs=watch_runs, watch_test=test, watch_action="roll_back", watch_hard_limit=hard_limit
    )
    kinds = ("bad", "good", "neutral", "far")
    failed, inconclusive, passed, counts = ({k: 0 for k in kinds} for _ in range(4))
    started = time.perf_counter()
    for kind, entry, runs in changes:
        verdict = judge(entry, runs, policy, superseded=True)
        counts[kind] += 1
        {"failed": failed, "passed": passed, "inconclusive": inconclusive}[verdict.state][kind] += 1
    seconds = time.perf_counter() - started
    return {
        "watch_runs": watch_runs,
        "test": test,
        "hard_limit": hard_limit,
        "detected_bad": rate(failed["bad"], counts["bad"]),
        "detected_far": rate(failed["far"], counts["far"]),
        "false_roll_back_good": rate(failed["good"], counts["good"]),
        "false_roll_back_neutral": rate(failed["neutral"], counts["neutral"]),
        "passed_good": rate(passed["good"], counts["good"]),
        "inconclusive": {k: inconclusive[k] for k in counts},
        "judge_seconds": round(seconds, 3),
    }


TESTS = ("sign", "wilcoxon", "permutation_scopes")
CORRELATION = 0.5  # between the scopes of one run, in the second history
Z99, Z90 = 2.3263478740408408, 1.2815515655446004  # standard normal quantiles


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def oracle_power(delta: float, runs: int, draws: int, seed: int) -> dict:
    """The Neyman–Pearson test of "the truth is the old values" (a bad change) against "the truth is the new ones"
    (a good change) on ``runs`` runs × 3 scopes, at 1 % false roll backs of good changes. Relative units (the
    truth 1, one value set 1 + δ): the likelihoods are scale-free."""
    k = runs * len(SCOPES)
    closed = normal_cdf(math.sqrt(k) * delta / NOISE - Z99)
    rng = np.random.default_rng(seed)

    def llr(x: np.ndarray, old: float, new: float) -> np.ndarray:
        """log p(x | truth = old) − log p(x | truth = new), σ = 3 % of the truth, summed over a change's runs."""

        def logpdf(mean: float) -> np.ndarray:
            sd = NOISE * mean
            return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd)

        return (logpdf(old) - logpdf(new)).sum(axis=1)

    truth = 1.0  # the runs always recommend the truth; a good and a bad change differ in which side it is
    good = llr(truth * (1 + NOISE * rng.standard_normal((draws, k))), old=1 + delta, new=truth)
    bad = llr(truth * (1 + NOISE * rng.standard_normal((draws, k))), old=truth, new=1 + delta)
    threshold = float(np.quantile(good, 0.99))
    return {
        "runs": runs,
        "observations": k,
        "offset_relative": delta,
        "fit_error_ratio": expected_abs(delta, NOISE) / expected_abs(0.0, NOISE),
        "false_alarm": 0.01,
        "power_closed_form": closed,
        "power_simulated": float((bad > threshold).mean()),
        "false_alarm_simulated": float((good > threshold).mean()),
        "draws": draws,
    }


def oracle(runs: int, draws: int, seed: int) -> dict:
    """The oracle at the planted effect (+10 % fit error) and the smallest effect at which it reaches 90 %."""
    needed = NOISE * (Z99 + Z90) / math.sqrt(runs * len(SCOPES))
    return {
        "at_planted_effect": oracle_power(offset_for(1.10), runs, draws, seed),
        "at_90_percent": oracle_power(needed, runs, draws, seed + 1),
    }


def score_cost(changes, repeat: int) -> dict:
    domain = get_domain("vol_surface")
    _, entry, runs = changes[0]
    runs = runs * max(1, repeat // len(runs))
    started = time.perf_counter()
    for run in runs:
        domain.score(entry.new_values, run)
        domain.score(entry.previous_values, run)
    return {"runs": len(runs), "us_per_run": round((time.perf_counter() - started) / len(runs) * 1e6, 2)}


def update_cost(updates: int, watch_runs: int) -> dict:
    """run_update with the watch on and off, alternating, each on its own file history of the same runs; and the
    watch's own time in each update with it on (its two calls, ``after_run`` and ``settle``, timed in place)."""
    from calibration_policy import watch
    from calibration_policy.pipeline import run_update
    from calibration_policy.target import JsonFileTarget

    sys.path.insert(0, str(HERE.parent / "tests" / "calibration_policy"))
    from conftest import build_result

    quiet = {"min_delta_global": 0.5, "min_delta_band": 0.5}
    setups = {
        "watch_off": CalibrationUpdatePolicy(**quiet),
        "watch_on": CalibrationUpdatePolicy(**quiet, watch_runs=watch_runs, watch_action="notify"),
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    own: list[float] = []  # the watch's own milliseconds in each update with it on
    calls = {name: getattr(watch, name) for name in ("after_run", "settle")}

    def timed(call):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                own[-1] += (time.perf_counter() - started) * 1000

        return run

    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as root:
        targets, dirs = {}, {}
        for name, policy in setups.items():
            folder = Path(root) / name
            folder.mkdir()
            (folder / "live.json").write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
            targets[name] = JsonFileTarget(folder / "live.json")
            dirs[name] = {k: folder / k for k in ("history_dir", "archive_dir", "suggestions_dir")}
            run_update(
                build_result(global_m=1.08, bands={"weekly": 1.08, "monthly": 1.08}),
                underlying="SPY",
                source="harvested",
                target=targets[name],
                options=UpdateOptions(timestamp=START, force=True),
                context=Context.build(policy=policy, **dirs[name]),
            )
        for day in range(1, updates + 1):
            value = float(1.0 + rng.normal(0, 0.01))
            result = build_result(global_m=value, bands={"weekly": value, "monthly": value})
            order = list(setups) if day % 2 else list(reversed(setups))
            for name in order:
                if name == "watch_on":
                    own.append(0.0)
                    for call, original in calls.items():
                        setattr(watch, call, timed(original))
                started = time.perf_counter()
                try:
                    run_update(
                        result,
                        underlying="SPY",
                        source="harvested",
                        target=targets[name],
                        options=UpdateOptions(timestamp=START + timedelta(days=day)),
                        context=Context.build(policy=setups[name], **dirs[name]),
                    )
                finally:
                    for call, original in calls.items():
                        setattr(watch, call, original)
                times[name].append((time.perf_counter() - started) * 1000)
    off, on = statistics.median(times["watch_off"]), statistics.median(times["watch_on"])
    paired = statistics.median(a - b for a, b in zip(times["watch_on"], times["watch_off"], strict=True))
    return {
        "updates": updates,
        "watch_runs": watch_runs,
        "median_ms_watch_off": round(off, 3),
        "median_ms_watch_on": round(on, 3),
        "median_paired_difference_ms": round(paired, 3),
        "watch_own_ms": {
            "median": round(statistics.median(own), 3),
            "mean": round(statistics.fmean(own), 3),
            "median_after_verdict": round(statistics.median(own[watch_runs + 1 :] or own), 3),
            "while_watching_mean": round(statistics.fmean(own[: watch_runs + 1]), 3),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=73_000, help="Synthetic runs in all (default 73,000).")
    parser.add_argument("--runs-per-change", type=int, default=24, help="Runs after each change (default 24).")
    parser.add_argument("--updates", type=int, default=60, help="Updates timed with the watch on and off.")
    parser.add_argument("--quick", action="store_true", help="A smoke run: 1,200 runs, 8 updates.")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--oracle-draws", type=int, default=200_000, help="Simulated changes each way (oracle).")
    parser.add_argument("--out", type=Path, default=HERE / "results_watch.json")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.updates, args.oracle_draws = 1_200, 8, 20_000
    load_start = os.getloadavg()
    started = time.perf_counter()
    changes = synthetic(args.runs, args.runs_per_change, args.seed)
    built = time.perf_counter() - started
    configurations = [(6, test, None) for test in TESTS] + [(6, "sign", {"runs": 3, "worse_by": 0.25})]
    configurations += [(n, test, None) for n in (12, 24) for test in TESTS]
    found = [detection(changes, n, test, limit) for n, test, limit in configurations if n <= args.runs_per_change]
    best = oracle(6, args.oracle_draws, args.seed)
    goal_ratio = best["at_90_percent"]["fit_error_ratio"]
    at_goal_changes = synthetic(args.runs, args.runs_per_change, args.seed + 1, ratio=goal_ratio)
    at_goal = [detection(at_goal_changes, 6, test, None) for test in TESTS]
    correlated_changes = synthetic(args.runs, args.runs_per_change, args.seed + 2, correlation=CORRELATION)
    correlated = [detection(correlated_changes, 6, test, None) for test in TESTS]
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_start,
            "load_average_at_end": os.getloadavg(),
        },
        "runs": len(changes) * args.runs_per_change,
        "changes": len(changes),
        "runs_per_change": args.runs_per_change,
        "bad_offset_relative": offset_for(1.10),
        "build_seconds": round(built, 2),
        "detection": found,
        "oracle": best,
        "detection_at_oracle_90": {"fit_error_ratio": goal_ratio, "detection": at_goal},
        "detection_scopes_correlated": {"correlation": CORRELATION, "detection": correlated},
        "score_cost": score_cost(changes, 20_000 if not args.quick else 200),
        "update_cost": update_cost(args.updates, 6),
    }
    results["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{results['runs']:,} runs, {results['changes']:,} changes (a quarter each bad, good, neutral, far)\n")
    print(
        "| watch | test | hard limit | bad (+10 % error) detected | far (10 % off) detected | good rolled back "
        "| neutral rolled back | good passed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in found:

        def cell(r):
            return f"{r['rate']:.1%} [{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}]"

        limit = f"{row['hard_limit']['runs']} × {row['hard_limit']['worse_by']:.0%}" if row["hard_limit"] else "–"
        print(
            f"| {row['watch_runs']} runs | {row['test']} | {limit} | {cell(row['detected_bad'])} | {cell(row['detected_far'])} | "
            f"{cell(row['false_roll_back_good'])} | {cell(row['false_roll_back_neutral'])} | {cell(row['passed_good'])} |"
        )
    planted, needed = best["at_planted_effect"], best["at_90_percent"]
    ours = {row["test"]: row for row in found if row["watch_runs"] == 6 and not row["hard_limit"]}
    print(
        f"\nThe best possible test (Neyman–Pearson, knows the planted distributions; 6 runs × 3 scopes, 1 % of good "
        f"changes rolled back): detects {planted['power_simulated']:.1%} of the +10 % changes "
        f"(closed form {planted['power_closed_form']:.1%}); ours "
        + ", ".join(f"{ours[test]['detected_bad']['rate']:.1%} ({test})" for test in TESTS)
        + f". It reaches 90 % "
        f"({needed['power_simulated']:.1%} simulated) at an offset of {needed['offset_relative']:.2%}, "
        f"a fit error +{needed['fit_error_ratio'] - 1:.0%}; there ours: "
        + ", ".join(
            f"{row['test']} {row['detected_bad']['rate']:.1%} detected, "
            f"{row['false_roll_back_good']['rate']:.1%} of good changes rolled back"
            for row in at_goal
        )
        + "."
    )
    print(
        f"\nWhen a run's scopes move together (ρ = {CORRELATION}), 6 runs, +10 %: "
        + ", ".join(
            f"{row['test']} {row['detected_bad']['rate']:.1%} detected, "
            f"{row['false_roll_back_good']['rate']:.1%} of good and {row['false_roll_back_neutral']['rate']:.1%} "
            "of neutral changes rolled back"
            for row in correlated
        )
        + "."
    )
    cost = results["update_cost"]
    print(
        f"\nScoring one run (two value sets): {results['score_cost']['us_per_run']} µs. An update: "
        f"{cost['median_ms_watch_off']} ms without the watch, {cost['median_ms_watch_on']} ms with it "
        f"(median paired difference {cost['median_paired_difference_ms']} ms, {cost['updates']} updates each); "
        f"the watch's own calls take a median {cost['watch_own_ms']['median']} ms an update "
        f"({cost['watch_own_ms']['while_watching_mean']} ms on average while watching, when it reads the runs "
        f"and records the counts)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
