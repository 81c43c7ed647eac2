"""The policy lab's commands: ``replay``, ``compare``, ``tune``, and ``policy`` (its versions).

Nothing here writes unless asked: ``replay`` and ``compare`` only read; ``tune`` writes its
candidate (``--out``) after every candidate was replayed; ``policy set``/``rollback`` archive a
version and then write the data root's policy TOML. Progress bars go to stderr, on a terminal only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calibration_policy.hookspecs import hookimpl

if TYPE_CHECKING:
    import click


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr (nothing when stderr is not a terminal); yields ``advance(n)``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda n=1: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_end(day) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def _history(history_dir, underlying, since, until):
    from calibration_policy.errors import HistoryError
    from calibration_policy.replay import load_history
    from calibration_policy.stores import active_store, open_store

    # the runs before --since stay: the smoothing windows of the first replayed runs reach back into them
    runs = load_history(history_dir, underlying, None, _day_end(until) if until else None)
    if not runs or (since and not any(run.timestamp >= _day_start(since) for run in runs)):
        where = open_store(history_dir).directory or active_store().describe()  # a folder, else the database
        what = f" of {underlying.upper()}" if underlying else ""
        span = f" from {since or 'the start'} to {until or 'now'}" if since or until else ""
        raise HistoryError(f"There are no calibration runs{what}{span} in {where}; nothing to replay.")
    return runs


def _start_values(path: str | None):
    if path is None:
        return None
    import json

    from calibration_policy.errors import CalibrationPolicyError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CalibrationPolicyError(f"--start-values {path} is not a readable JSON file ({error}).") from None
    if not isinstance(data, dict):
        raise CalibrationPolicyError(
            f"--start-values {path} must hold {{scope: value}} or {{underlying: {{scope: value}}}}."
        )
    return data


def _watch_cells(watch: tuple[int, int] | None) -> list[str]:
    return ["–", "–"] if watch is None else [str(watch[0]), str(watch[1])]


def _figures_rows(results: dict[str, Any]) -> list[list[str]]:
    watched = any(result.watch is not None for result in results.values())
    rows = []
    for name, result in results.items():
        f = result.figures
        rows.append(
            [
                name,
                str(f.runs),
                str(f.applies),
                f"{f.movement:.4f}",
                str(f.flip_flops),
                "–" if f.mean_lag is None else f"{f.mean_lag:.4f}",
                str(len(result.differences)),
                *(_watch_cells(result.watch) if watched else []),
            ]
        )
    return rows


FIGURE_COLUMNS = ["Policy", "Runs", "Applies", "Movement", "Flip-flops", "Mean |live−rec|", "Differ"]
WATCH_COLUMNS = ["Roll backs", "Wrong"]  # what the watch after apply would roll back, and wrongly


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    from calibration_policy.cli import (
        DateType,
        data_option,
        emit_json,
        json_option,
        load_policy,
        plugins_dir_option,
        print_table,
    )

    def places(command):
        for option in reversed(
            [
                click.option(
                    "--history-dir", metavar="DIR", help="Where runs are kept (default: data/calibration_runs)."
                ),
                click.option(
                    "--archive-dir", metavar="DIR", help="The config archive, for what was live at the first run."
                ),
                click.option("--underlying", "-u", help="Only this underlying, e.g. SPY."),
                click.option("--since", type=DateType(), help="First market date to replay (YYYY-MM-DD)."),
                click.option("--until", type=DateType(), help="Last market date to replay (YYYY-MM-DD)."),
                click.option(
                    "--start-values", metavar="FILE", help="JSON {scope: value} (or per underlying) to start from."
                ),
                data_option,
                plugins_dir_option,
                json_option,
            ]
        ):
            command = option(command)
        return command

    @cli.command()
    @click.option(
        "--policy", "policy_file", metavar="FILE", help="The candidate policy TOML (default: the live policy)."
    )
    @places
    @click.option("--all", "show_all", is_flag=True, help="List every differing decision, not just the first 20.")
    def replay(policy_file, history_dir, archive_dir, underlying, since, until, start_values, as_json, show_all):
        """Replay a policy over the recorded runs: what it would have applied, and where it differs."""
        from calibration_policy.archive import resolve_archive_dir
        from calibration_policy.replay import replay as run_replay

        policy = load_policy(policy_file, history_dir)
        runs = _history(history_dir, underlying, since, until)
        with progress_bar("Replaying runs", len(runs), not as_json) as advance:
            result = run_replay(
                runs,
                policy,
                _start_values(start_values),
                archive_dir=resolve_archive_dir(archive_dir),
                since=_day_start(since) if since else None,
                progress=advance,
            )
        if as_json:
            emit_json(result.to_dict())
            return
        click.echo(result.summary())
        click.echo()
        print_table(
            ["Underlying", "Runs", "Applies", "Movement", "Flip-flops", "Mean |live−rec|", "Differ", "Start"],
            [
                [
                    u.underlying,
                    str(u.figures.runs),
                    str(u.figures.applies),
                    f"{u.figures.movement:.4f}",
                    str(u.figures.flip_flops),
                    "–" if u.figures.mean_lag is None else f"{u.figures.mean_lag:.4f}",
                    str(len(u.differences)),
                    u.start_from,
                ]
                for u in result.underlyings.values()
            ],
        )
        differences = result.differences
        if differences:
            click.echo(f"\nDecided otherwise than recorded ({len(differences)}):")
            for d in differences if show_all else differences[:20]:
                click.echo(f"  {d.text()}")
            if len(differences) > 20 and not show_all:
                click.echo(f"  … {len(differences) - 20} more (--all, or --json)")

    @cli.command()
    @click.argument("policies", nargs=-1, metavar="POLICY.toml...")
    @places
    @click.option("--no-live", is_flag=True, help="Leave the live policy out of the comparison.")
    @click.option("--svg", metavar="FILE", help="Write the chart of the live value under each policy here.")
    @click.option("--scope", default="global", show_default=True, help="Which value the chart shows.")
    def compare(
        policies, history_dir, archive_dir, underlying, since, until, start_values, as_json, no_live, svg, scope
    ):
        """Replay two or more policies over the same runs and show them side by side."""
        from calibration_policy.archive import resolve_archive_dir
        from calibration_policy.errors import CalibrationPolicyError
        from calibration_policy.lab import compare as run_compare
        from calibration_policy.policy import CalibrationUpdatePolicy

        named = {} if no_live else {"live": load_policy(None, history_dir)}
        for path in policies:
            named[Path(path).stem if Path(path).stem not in named else path] = CalibrationUpdatePolicy.from_toml(path)
        if len(named) < 2:
            raise CalibrationPolicyError(
                "compare needs two or more policies: give candidate TOML files (the live policy counts unless --no-live)."
            )
        runs = _history(history_dir, underlying, since, until)
        with progress_bar("Replaying policies", len(runs) * len(named), not as_json) as advance:
            comparison = run_compare(
                runs,
                named,
                start_values=_start_values(start_values),
                archive_dir=resolve_archive_dir(archive_dir),
                progress=advance,
                since=_day_start(since) if since else None,
            )
        chart = None
        if svg:
            shown = underlying.upper() if underlying else sorted(next(iter(comparison.results.values())).underlyings)[0]
            Path(svg).write_text(comparison.svg(shown, scope), encoding="utf-8")
            chart = svg
        if as_json:
            emit_json({**comparison.to_dict(), "svg": chart})
            return
        watched = any(result.watch is not None for result in comparison.results.values())
        print_table(FIGURE_COLUMNS + (WATCH_COLUMNS if watched else []), _figures_rows(comparison.results))
        if chart:
            click.echo(f"\nChart of the live {scope} value under each policy: {chart}")

    @cli.command()
    @click.option(
        "--policy", "policy_file", metavar="FILE", help="The policy to start from (default: the live policy)."
    )
    @places
    @click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=LOW:HIGH",
        required=True,
        help="A threshold and its bounds, e.g. min_delta_global=0.01:0.06, rule_options.cooldown.days=1:5 or "
        "a watch setting: watch_runs=5:10, watch_tolerance=0:0.1, watch_hard_limit.worse_by=0.1:0.5.",
    )
    @click.option(
        "--objective",
        type=click.Choice(["lag", "watch_wrong", "watch_rolled_back"]),
        default="lag",
        show_default=True,
        help="What the front weighs against movement besides the lag: also the watch's wrong roll backs, or all "
        "its roll backs (needs a watch: watch_runs in the policy, or --param watch_runs=…).",
    )
    @click.option("--method", type=click.Choice(["grid", "random"]), default="grid", show_default=True)
    @click.option(
        "--n", "count", type=click.IntRange(1, 100_000), default=100, show_default=True, help="How many candidates."
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random search.")
    @click.option("--out", metavar="FILE", help="Write the chosen candidate as a policy TOML here.")
    def tune(
        policy_file,
        history_dir,
        archive_dir,
        underlying,
        since,
        until,
        start_values,
        as_json,
        params,
        method,
        count,
        seed,
        objective,
        out,
    ):
        """Search thresholds within bounds; show the Pareto front of movement against lag; write the pick."""
        from calibration_policy.archive import resolve_archive_dir
        from calibration_policy.errors import PolicyError
        from calibration_policy.lab import tune as run_tune

        space = {}
        for text in params:
            name, _, bounds = text.partition("=")
            low, sep, high = bounds.partition(":")
            try:
                space[name.strip()] = (float(low), float(high) if sep else float(low))
            except ValueError:
                raise PolicyError(
                    f"--param {text!r:.60} must look like NAME=LOW:HIGH, e.g. min_delta_global=0.01:0.06."
                ) from None
        base = load_policy(policy_file, history_dir)
        runs = _history(history_dir, underlying, since, until)
        with progress_bar("Replaying candidates", count, not as_json) as advance:
            result = run_tune(
                runs,
                base,
                space,
                method=method,
                n=count,
                seed=seed,
                progress=advance,
                objective=objective,
                start_values=_start_values(start_values),
                archive_dir=resolve_archive_dir(archive_dir),
                since=_day_start(since) if since else None,
            )
        written = str(result.write(out)) if out else None
        if as_json:
            emit_json({**result.to_dict(), "written": written})
            return
        click.echo(
            f"Replayed {len(result.candidates)} candidates ({method}{'' if method == 'grid' else f', seed {seed}'})"
            + (f"; {len(result.skipped)} refused by the policy's checks" if result.skipped else "")
            + ".\n"
        )
        third = {"watch_wrong": " or fewer wrong roll backs", "watch_rolled_back": " or fewer roll backs"}
        click.echo(
            f"Pareto front (less movement or less lag{third.get(objective, '')}; nothing beats these on "
            f"{'both' if objective == 'lag' else 'all three'}):"
        )
        chosen = result.chosen
        watched = any(c.watch is not None for c in result.candidates)
        print_table(
            ["", *space, "Applies", "Movement", "Flip-flops", "Mean |live−rec|", *(WATCH_COLUMNS if watched else [])],
            [
                [
                    "→" if c is chosen else "",
                    *(f"{c.params[k]:g}" for k in space),
                    str(c.figures.applies),
                    f"{c.figures.movement:.4f}",
                    str(c.figures.flip_flops),
                    f"{c.figures.mean_lag:.4f}",
                    *(_watch_cells(c.watch) if watched else []),
                ]
                for c in result.front
            ],
        )
        click.echo("\nChosen (→, the front's knee): " + ", ".join(f"{k} = {v:g}" for k, v in chosen.params.items()))
        click.echo(f"Written to {written}." if written else "Nothing written (give --out FILE to write it).")

    @cli.group("policy")
    def policy_group():
        """The policy's versions: who changed it and why, which was live when, and rollback."""

    def _data_dir():
        from calibration_policy.paths import data_root

        return data_root()

    def _versions():
        from calibration_policy.policy_versions import PolicyVersions

        return PolicyVersions(_data_dir())

    def _context(actor):
        """What a policy change from the command line runs in: the data root, who acts, via the CLI."""
        from calibration_policy.context import Context

        return Context.build(actor=actor, via="cli", data_dir=_data_dir())

    @policy_group.command("log")
    @data_option
    @json_option
    def policy_log(as_json):
        """Every policy version, oldest first."""
        versions = _versions().versions()
        if as_json:
            emit_json([v.to_dict() for v in versions])
            return
        if not versions:
            click.echo(
                "No policy versions yet; `calibration-policy policy set FILE --actor NAME --reason WHY` records one."
            )
            return
        print_table(
            ["Version", "Fingerprint", "At (UTC)", "By", "Kind", "Why"],
            [
                [
                    v.version_id,
                    v.fingerprint,
                    v.at.strftime("%Y-%m-%d %H:%M"),
                    v.actor,
                    v.kind + (f" to {v.rolled_back_to}" if v.rolled_back_to else ""),
                    v.reason,
                ]
                for v in versions
            ],
        )

    @policy_group.command("set")
    @click.argument("policy_file", metavar="FILE")
    @click.option("--actor", required=True, help="Who changes the policy (needs change_policy).")
    @click.option("--reason", required=True, help="Why.")
    @data_option
    @json_option
    def policy_set(policy_file, actor, reason, as_json):
        """Make FILE the live policy: archived as a new version, then written to the data root.

        The settings FILE names replace the live ones; a setting it leaves out (store, [permissions] …) is kept."""
        from calibration_policy.pipeline import set_policy
        from calibration_policy.policy import CalibrationUpdatePolicy

        version = set_policy(CalibrationUpdatePolicy.from_toml(policy_file), reason=reason, context=_context(actor))
        emit_json(version.to_dict()) if as_json else click.echo(
            f"Policy version {version.version_id} ({version.fingerprint}) is live, set by {version.actor}: {version.reason}."
        )

    def _changes_text(changes, what: str) -> list[str]:
        if not changes:
            return [f"{what} changes no setting."]
        sensitive = sum(1 for c in changes if c.sensitive)
        lines = [
            f"{what} changes {len(changes)} setting{'s' if len(changes) != 1 else ''}"
            + (f", {sensitive} of them sensitive (marked !):" if sensitive else ":")
        ]
        return lines + [f"  {'!' if c.sensitive else ' '} {c.text}" for c in changes]

    def _policy_of(ref: str):
        """A policy to compare: "live", a policy TOML (as `policy set` would make it live), a proposal or a version."""
        from calibration_policy.errors import CalibrationPolicyError
        from calibration_policy.policy import CalibrationUpdatePolicy
        from calibration_policy.policy_versions import PolicyProposals

        versions = _versions()
        if ref == "live":
            return "the policy in force", versions.in_force()
        if ref.endswith(".toml") or Path(ref).is_file():
            return ref, versions.incoming(CalibrationUpdatePolicy.from_toml(ref))
        try:
            proposal = PolicyProposals(versions.data_dir).get(ref)
        except CalibrationPolicyError:
            version = versions.get(ref)
            return f"version {version.version_id}", version.load()
        return f"proposal {proposal.proposal_id}", versions.incoming(CalibrationUpdatePolicy.from_dict(proposal.policy))

    @policy_group.command("diff")
    @click.argument("old", metavar="FROM")
    @click.argument("new", metavar="TO", required=False)
    @data_option
    @json_option
    def policy_diff_command(old, new, as_json):
        """Every setting that differs from FROM to TO (each: live, a policy FILE, a proposal or a version id).

        With one argument, from the policy in force to it. Changes to [permissions], the four-eyes settings
        and store are marked sensitive."""
        from calibration_policy.policy_versions import policy_diff

        (old_name, old_policy), (new_name, new_policy) = (
            (_policy_of("live"), _policy_of(old)) if new is None else (_policy_of(old), _policy_of(new))
        )
        changes = policy_diff(old_policy, new_policy)
        if as_json:
            emit_json({"from": old_name, "to": new_name, "changes": [c.to_dict() for c in changes]})
            return
        click.echo("\n".join(_changes_text(changes, f"From {old_name} to {new_name}")))

    @policy_group.command("show")
    @click.argument("ref", metavar="ID")
    @data_option
    @json_option
    def policy_show(ref, as_json):
        """A policy proposal (what approving it would change in the policy in force) or a version (what it
        changed from the one before it), every changed setting before → after, sensitive ones marked."""
        from calibration_policy.errors import CalibrationPolicyError
        from calibration_policy.policy_versions import PolicyProposals

        versions = _versions()
        proposals = PolicyProposals(versions.data_dir)
        try:
            proposal = proposals.get(ref)
        except CalibrationPolicyError:
            proposal = None
        if proposal is not None:
            approved = proposal.status == "approved" and proposal.version_id
            changes = versions.changed_by(proposal.version_id) if approved else proposals.diff(proposal.proposal_id)
            head = (
                f"Policy proposal {proposal.proposal_id} by {proposal.proposer} ({proposal.status}"
                + (f" by {proposal.reviewer}" if proposal.reviewer else "")
                + f"): {proposal.reason}"
            )
            what = {"pending": "Approving it", "approved": "It"}.get(proposal.status, "Against the policy in force, it")
            record = proposal.to_dict()
        else:
            version = versions.get(ref)
            changes = versions.changed_by(version.version_id)
            head = (
                f"Policy version {version.version_id} ({version.fingerprint}), {version.kind} by {version.actor}"
                + (f" via {version.via}" if version.via else "")
                + f": {version.reason}"
            )
            what, record = "It", version.to_dict()
        if as_json:
            emit_json({**record, "changes": [c.to_dict() for c in changes]})
            return
        click.echo("\n".join([head, *_changes_text(changes, what)]))

    @policy_group.command("accept")
    @click.option("--actor", required=True, help="Who accepts the edit (needs change_policy).")
    @click.option("--reason", default="", help="Why (default: the settings the edit changed).")
    @data_option
    @json_option
    def policy_accept(actor, reason, as_json):
        """Record the policy file, edited outside calibration-policy, as a new version (see `doctor`)."""
        from calibration_policy.paths import data_root
        from calibration_policy.tamper import accept

        version = accept(data_root(), actor=actor, reason=reason)
        emit_json(version.to_dict()) if as_json else click.echo(
            f"Accepted: the policy file is now version {version.version_id} ({version.fingerprint}), "
            f"recorded by {version.actor}: {version.reason}."
        )

    @policy_group.command("as-of")
    @click.argument("when", metavar="DATE")
    @data_option
    @json_option
    def policy_as_of(when, as_json):
        """Which policy was live on DATE (YYYY-MM-DD: at the end of that UTC day; or an ISO time)."""
        from calibration_policy.moments import parse_moment

        moment = parse_moment(when, "DATE")
        version = _versions().as_of(moment)
        if as_json:
            emit_json({"as_of": moment.isoformat(), "version": version.to_dict() if version else None})
        elif version is None:
            click.echo(
                f"No policy version was recorded by {moment.isoformat()} (the built-in or hand-edited policy was live)."
            )
        else:
            click.echo(
                f"On {when}: version {version.version_id} ({version.fingerprint}), set by {version.actor}: {version.reason}."
            )
            click.echo(version.load().explain())

    @policy_group.command("rollback")
    @click.argument("version_id", metavar="VERSION")
    @click.option("--actor", required=True, help="Who rolls back (needs change_policy).")
    @click.option("--reason", required=True, help="Why.")
    @data_option
    @json_option
    def policy_rollback(version_id, actor, reason, as_json):
        """Make an earlier policy VERSION (id or fingerprint) live again, as a new version."""
        from calibration_policy.pipeline import roll_back_policy

        version = roll_back_policy(version_id, reason=reason, context=_context(actor))
        emit_json(version.to_dict()) if as_json else click.echo(
            f"Rolled back to {version.rolled_back_to}: policy version {version.version_id} ({version.fingerprint}) is live."
        )
