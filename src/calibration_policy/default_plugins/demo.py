"""Replay bundled harvested data through the policy, day by day, as the host's cron job would."""

from __future__ import annotations

import shlex
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.hookspecs import hookimpl
from calibration_policy.paths import live_config_copy
from calibration_policy.plugins import collect
from calibration_policy.policy import CalibrationUpdatePolicy

from . import sample

if TYPE_CHECKING:
    import click


@dataclass
class UnderlyingSummary:
    underlying: str
    runs: int = 0
    applied: int = 0
    not_applied_by_reason: Counter = field(default_factory=Counter)
    final: dict[str, float] = field(default_factory=dict)
    first_day: str = ""
    last_day: str = ""


@dataclass
class DemoSummary:
    out: Path
    underlyings: list[UnderlyingSummary]
    policy: CalibrationUpdatePolicy
    weights: str | None = None  # what the scoring-weights step suggested, in one sentence

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "history_dir": str(self.out / "calibration_runs"),
            "archive_dir": str(self.out / "config_archive"),
            "underlyings": {
                u.underlying: {
                    "runs": u.runs,
                    "applied": u.applied,
                    "not_applied": u.runs - u.applied,
                    "not_applied_by_reason": dict(u.not_applied_by_reason),
                    "final": u.final,
                    "first_day": u.first_day,
                    "last_day": u.last_day,
                }
                for u in self.underlyings
            },
            "weights": self.weights,
        }

    def text(self) -> str:
        lines = [f"Replayed the bundled data through the policy into {self.out}/", ""]
        for u in self.underlyings:
            lines.append(
                f"{u.underlying}: {u.runs} daily runs ({u.first_day} to {u.last_day}), "
                f"{u.applied} applied, {u.runs - u.applied} not applied"
            )
            for reason, count in u.not_applied_by_reason.most_common():
                lines.append(f"   not applied, {reason}: {count}")
            final = ", ".join(
                f"{scope} {value:.3f}"
                for scope, value in sorted(u.final.items(), key=lambda kv: (kv[0] != "global", kv[0]))
            )
            lines.append(f"   live multipliers now: {final}")
        if self.weights:
            lines += ["", "Scoring weights: " + self.weights]
        out = shlex.quote(str(self.out))
        names = [u.underlying for u in self.underlyings]
        symbol = "SPY" if "SPY" in names or not names else names[0]
        lines += [
            "",
            "Policy: " + self.policy.explain(),
            "",
            f"See the runs:      calibration-policy history {symbol} --data {out}",
        ]
        if _can_serve():  # each command printed here is run by tests/calibration_policy/test_hints.py
            lines.append(
                f"See the panel:     calibration-policy serve --data {out}   (then open http://127.0.0.1:8000/calibration/)"
            )
        return "\n".join(lines)


def _can_serve() -> bool:
    """``serve`` needs the panel (the [ui] extra); it then works from any folder, with or without a host app."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("fastapi", "calibration_policy_ui"))


REASON_NAMES = {
    "min_sample_size": "too few options",
    "min_vega_sum": "total vega too low",
    "min_delta": "change too small",
    "bounds": "outside the allowed range",
}


def demo_plugins(
    policy: CalibrationUpdatePolicy, source_name: str = "harvested", builtin: bool = False
) -> tuple[Any, Any]:
    """The host's source and target when a host plugin registers them (the options agent's, in the repository),
    else the package's own on its bundled sample data, so the demo runs wherever the package is installed."""
    sources, targets = collect("sources").found, collect("targets").found
    if not builtin and source_name in sources and policy.domain in targets:
        return sources[source_name], targets[policy.domain].factory
    if policy.domain != "vol_surface":
        raise CalibrationPolicyError(
            f"The demo replays IV multipliers, but the policy's domain is {policy.domain!r}; "
            "run the demo without --policy (or with a vol_surface policy)."
        )
    return sample.SampleSource(), sample.sample_target


def run_demo(
    out: Path,
    policy: CalibrationUpdatePolicy,
    fresh: bool = True,
    progress: bool = True,
    source_name: str = "harvested",
    builtin: bool = False,
) -> DemoSummary:
    """Replay every bundled day of every underlying into ``out`` (history, archive, configs).

    ``builtin`` uses the package's own source and target even when a host plugin provides them."""
    from rich.console import Console
    from rich.progress import track

    from calibration_policy.context import Context
    from calibration_policy.pipeline import (  # the update stack loads only for a demo
        UpdateOptions,
        run_time_for,
        run_update,
    )

    source, factory = demo_plugins(policy, source_name, builtin)
    if fresh and out.exists():
        marker = out / ".calibration-policy-demo"
        if not marker.exists():
            raise CalibrationPolicyError(f"{out} exists and is not a demo folder; choose another --out.")
        shutil.rmtree(out)
    (out / "config").mkdir(parents=True, exist_ok=True)
    (out / ".calibration-policy-demo").touch()
    plan = [(u, d) for u in source.underlyings() for d in source.dates(u)]
    if not plan:
        raise CalibrationPolicyError(
            f"The {source_name} source has no days to replay; run `calibration-policy demo "
            f"--sample-data --out {shlex.quote(str(out))}` to replay the sample data shipped with "
            "the package instead."
        )
    summaries: dict[str, UnderlyingSummary] = {}
    targets = {}
    days = track(
        plan, "Replaying calibration days", disable=not progress, console=Console(stderr=True)
    )  # stdout stays the summary's
    for underlying, day in days:
        if underlying not in targets:
            default = factory(underlying, None)
            path = live_config_copy(policy.domain, underlying, out)
            if not path.exists():
                shutil.copyfile(default.path, path)
            targets[underlying] = factory(underlying, str(path))
            summaries[underlying] = UnderlyingSummary(underlying, first_day=str(day))
        outcome = run_update(
            source.calibrate(underlying, day),
            underlying=underlying,
            source=source_name,
            target=targets[underlying],
            options=UpdateOptions(timestamp=run_time_for(day)),
            context=Context.build(
                policy=policy, history_dir=out / "calibration_runs", archive_dir=out / "config_archive"
            ),
        )
        summary = summaries[underlying]
        summary.runs += 1
        summary.last_day = str(day)
        if outcome.applied:
            summary.applied += 1
        else:
            blocking = next(v.code for v in outcome.decision.verdicts if not v.passed)
            summary.not_applied_by_reason[REASON_NAMES.get(blocking, blocking)] += 1
    for underlying, target in targets.items():
        summaries[underlying].final = target.values(target.load())
    return DemoSummary(out, list(summaries.values()), policy, _suggest_weights(out))


def _suggest_weights(out: Path, trades: Path = sample.TRADES, weights: Path = sample.WEIGHTS) -> str | None:
    """Copy the bundled trades and live weights into the demo folder and leave a suggestion for review."""
    if not (trades.is_file() and weights.is_file()):
        return None
    from calibration_policy.context import Context

    from .scoring_weights.domain import weights_target
    from .scoring_weights.flow import suggest_weights

    shutil.copyfile(trades, out / "trades.parquet")
    shutil.copyfile(weights, out / "scoring_weights.json")
    outcome = suggest_weights(
        out / "trades.parquet",
        weights_target(path=out / "scoring_weights.json"),
        context=Context.build(
            history_dir=out / "calibration_runs", suggestions_dir=out / "suggestions", archive_dir=out / "archive"
        ),
    )
    if outcome.suggestion is None:
        return outcome.message
    # The suggestion's id is a time stamp; the summary names the command instead, so two demos read the same.
    return outcome.message.replace(
        f"Review it as suggestion {outcome.suggestion.suggestion_id}.",
        f"Review it: calibration-policy weights show --data {out}",
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click  # the CLI's libraries load only when the CLI asks for its commands

    from calibration_policy.cli import emit_json, load_policy, policy_options

    @cli.command()
    @policy_options
    @click.option(
        "--out", default="demo-output", show_default=True, help="Folder for the demo's history, archive and configs."
    )
    @click.option("--keep", is_flag=True, help="Keep an existing demo folder instead of starting fresh.")
    @click.option(
        "--sample-data",
        is_flag=True,
        help="Replay the sample data shipped with the package even when a host plugin provides a source.",
    )
    def demo(
        policy_file: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        as_json: bool,
        out: str,
        keep: bool,
        sample_data: bool,
    ) -> None:
        """Replay the bundled sample data through the policy and summarise."""
        summary = run_demo(
            Path(out),
            policy=load_policy(policy_file, history_dir),
            fresh=not keep,
            progress=not as_json,
            builtin=sample_data,
        )
        emit_json(summary.to_dict()) if as_json else click.echo(summary.text())
