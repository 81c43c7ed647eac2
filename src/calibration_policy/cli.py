"""``calibration-policy``: record, decide and apply calibrations from a terminal or a cron job.

One click group. Plugins add their commands through the ``register_commands(cli)`` hook (as in
simonw/llm), so plugins are loaded *before* the group is built. Every command prints plain
English (or stable JSON with ``--json``) and exits non-zero with one clear sentence when
something is wrong; no traceback reaches the user.

The output helpers here (``console``, ``print_table``, ``spinner``, ``emit_json``, ``json_option``,
``policy_options``, ``load_policy``) are for plugin commands too, so every command looks alike.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from .humanize import fmt_value, fmt_value_set
from .paths import DATA_ENV, data_root
from .redact import get_logger, mask
from .stores import STORE_ENV
from .tamper import UnrecordedEditError, load_in_force

if TYPE_CHECKING:
    from .pipeline import ForcedValues
    from .policy import CalibrationUpdatePolicy

PROG = "calibration-policy"
PLUGINS_ENV = "CALIBRATION_PLUGINS_DIR"

log = get_logger(__name__)
Callback = TypeVar("Callback", bound=Callable[..., Any])


# -- output, shared with plugin commands ------------------------------------------------------------


def console(stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr).

    Made per call because rich decides colour and width when a console is made, from the stream of
    that moment (pytest and click's CliRunner swap ``sys.stdout``): colour on a terminal, plain text
    when piped. Markup and emoji codes are off, so ``[original]`` or ``:x:`` in data print as written.
    """
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def print_table(columns: Sequence[str | Column], rows: Iterable[Sequence[str | Text]]) -> None:
    """Header, a rule, one row per record. Columns wrap to fit the terminal (80 wide when piped)
    unless made with ``Column(..., no_wrap=True)``; a cell given as ``Text(..., no_wrap=True,
    overflow="ellipsis")`` is cut to one line instead."""
    table = Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def spinner(message: str) -> AbstractContextManager[object]:
    """A spinner on stderr while a step may take seconds (a live calibration, a large trades file);
    nothing when stderr is not a terminal, so pipes and logs stay clean."""
    err = console(stderr=True)
    return err.status(message) if err.is_terminal else nullcontext()


def emit_json(data: Any) -> None:
    """Every command's ``--json`` output: stable, and with any store password masked."""
    click.echo(mask(json.dumps(data, indent=2, sort_keys=True, default=str)))


json_option = click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of text.")

# Loaded before click parses anything (see _load_plugins); declared so that click accepts it and --help shows it.
plugins_dir_option = click.option(
    "--plugins-dir",
    metavar="DIR",
    expose_value=False,
    help=f"Folder of host plugins (sources, targets, commands); default ${PLUGINS_ENV}.",
)


# Also read from the raw arguments (see _raw_option), so that every command, a plugin's too, and every
# default below it (history, archive, suggestions, policy, weights, trades, locks) follows one root.
data_option = click.option(
    "--data",
    metavar="DIR",
    expose_value=False,
    help=f"Data root: runs, archive, suggestions, policy, weights and trades below it (default ${DATA_ENV}, else data).",
)


# Read from the raw arguments too, like --data: every command, a plugin's too, uses the one store.
store_option = click.option(
    "--store",
    metavar="URL",
    expose_value=False,
    help="Where runs, suggestions and the archive live: postgresql://user:pw@host/db (default $CALIBRATION_STORE, "
    "else `store` in the policy file, else the data folder).",
)


def policy_options(command: Callback) -> Callback:
    """``--policy``, ``--history-dir``, ``--archive-dir``, ``--plugins-dir`` and ``--json``: what every
    command that reads the policy or the runs takes."""
    options = [
        click.option(
            "--policy",
            "policy_file",
            metavar="FILE",
            help="Policy TOML file (default: $CALIBRATION_POLICY, else data/calibration_policy.toml, else built-in).",
        ),
        click.option(
            "--history-dir",
            metavar="DIR",
            help="Where runs are kept (default: $CALIBRATION_HISTORY_DIR, else data/calibration_runs).",
        ),
        click.option(
            "--archive-dir",
            metavar="DIR",
            help="Where replaced configs are kept (default: $CALIBRATION_ARCHIVE_DIR, else data/config_archive).",
        ),
        data_option,
        store_option,
        plugins_dir_option,
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_policy(policy_file: str | None, history_dir: str | None) -> CalibrationUpdatePolicy:
    """The policy in force; without --policy, the one next to the runs' data folder."""

    data_dir = Path(history_dir).parent if history_dir else data_root()
    return load_in_force(policy_file, data_dir=data_dir)


class DateType(click.ParamType):
    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r:.40} is not a date; use YYYY-MM-DD, for example 2025-12-10", param, ctx)


def again(command: str, history_dir: str | None = None) -> str:
    """``calibration-policy COMMAND`` on the data root (and history folder) this command ran with, so a printed
    hint works as printed."""
    import shlex

    root = os.environ.get(DATA_ENV)
    return (
        f"{PROG} {command}"
        + (f" --data {shlex.quote(root)}" if root else "")
        + (f" --history-dir {shlex.quote(history_dir)}" if history_dir else "")
    )


def _suggestions_beside(history_dir: str | None) -> Path | None:
    """A suggestion waits in the same data folder as the runs it came from, where the panel looks for it."""
    if history_dir is None or os.environ.get("CALIBRATION_SUGGESTIONS_DIR"):
        return None
    return Path(history_dir).parent / "suggestions"


def cli_context(
    policy: Any,
    actor: str | None,
    history_dir: str | None = None,
    archive_dir: str | None = None,
    suggestions_dir: str | None = None,
) -> Any:
    """What a command's change runs in: the policy it loaded, who acts (default: the login name), via the CLI,
    and its folders (the suggestions beside the runs when only ``--history-dir`` was given)."""
    from .context import Context
    from .permissions import os_user

    return Context.build(
        policy=policy,
        actor=actor or os_user(),
        via="cli",
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=suggestions_dir or _suggestions_beside(history_dir),
    )


def _target(domain: str, underlying: str, path: str | None):
    """The live config of ``underlying``: ``--config``, else the data folder's own copy (a demo's), else the host's."""
    from .paths import live_config_copy
    from .plugins import get_target_factory

    copy = live_config_copy(domain, underlying) if path is None else None
    return get_target_factory(domain)(underlying, str(copy) if copy is not None and copy.is_file() else path)


def _fmt(values: dict[str, float] | None, sums_to_one: bool = False) -> str:
    """The global multiplier, or for a domain without one (scoring weights) every value, briefly: the set shown
    as a whole (``sums_to_one``: the domain's values add up to 1, and so do the shown ones)."""
    if not values:
        return "–"
    if "global" in values:
        return fmt_value(values["global"])
    shown = fmt_value_set(values, 2, sums_to_one=sums_to_one)
    return " ".join(f"{scope[:4]} {shown[scope]}" for scope in values)


# -- the core commands -------------------------------------------------------------------------------


@click.command()
@policy_options
def explain(policy_file: str | None, history_dir: str | None, archive_dir: str | None, as_json: bool) -> None:
    """Say in plain English what the policy does, with its numbers."""
    policy = load_policy(policy_file, history_dir)
    if as_json:
        emit_json({"explanation": policy.explain(), "policy": policy.model_dump(mode="json")})
    else:
        click.echo(policy.explain())


@click.command()
@click.argument("underlying", required=False)
@policy_options
@click.option("--limit", type=int, default=10, show_default=True, help="How many runs.")
@click.option("--full", is_flag=True, help="Do not shorten long reasons (they wrap instead).")
@click.option(
    "--before",
    metavar="CURSOR",
    help="Only runs older than this one: <timestamp>,<run id> (the next page's cursor is printed under each page).",
)
@click.option(
    "--changes",
    is_flag=True,
    help="Show the audit trail instead: every change, with when, what, who, from where (via) and why.",
)
@click.option(
    "--suggestions-dir", metavar="DIR", help="Where suggestions wait (with --changes; default: beside the runs)."
)
def history(
    underlying: str | None,
    policy_file: str | None,
    history_dir: str | None,
    archive_dir: str | None,
    as_json: bool,
    limit: int,
    full: bool,
    before: str | None,
    changes: bool,
    suggestions_dir: str | None,
) -> None:
    """List an underlying's latest calibration runs and whether each went live (--changes: who changed what).

    UNDERLYING is its symbol, for example SPY (optional with --changes). Page back with --before
    (keyset paging: the oldest page is as quick as the newest).
    """
    import shlex

    from .history import MAX_LIMIT, _check_limit, cursor_of
    from .stores import open_store

    if changes:
        _print_changes(
            underlying,
            archive_dir,
            suggestions_dir or _suggestions_beside(history_dir),
            as_json,
            full,
            history_dir=history_dir,
            policy=load_policy(policy_file, history_dir),
        )
        return
    if not underlying:
        raise click.UsageError("Missing argument 'UNDERLYING' (or give --changes for the audit trail).")

    store = open_store(history_dir)
    runs = store.latest(underlying, min(_check_limit(limit) + 1, MAX_LIMIT), before=before or None)
    more = len(runs) > limit
    runs = runs[-limit:] if runs else runs
    # the same listing one page back, as a command that runs as printed (a cursor needs no shell quoting)
    older = (
        again(
            f"history {runs[0].underlying} --before {shlex.quote(cursor_of(runs[0]))}"
            + (f" --limit {limit}" if limit != 10 else "")
            + (" --full" if full else "")
            + (" --json" if as_json else ""),
            history_dir,
        )
        if more
        else ""
    )
    if as_json:
        emit_json([run.model_dump(mode="json") for run in reversed(runs)])
        if more:
            click.echo(f"next page: {older}", err=True)
        return
    if not runs:
        click.echo(_no_runs_hint(underlying.upper(), history_dir))
        return
    shown = " (the global value)" if "global" in runs[-1].recommended else ""
    click.echo(f"Last {len(runs)} calibration runs for {runs[0].underlying}{shown}, newest first:\n")
    recommended = "Recommended"
    applied = {"applied": "✓ yes", "not applied": "– no", "pending": "? pending", "undecided": "…"}
    from .plugins import sums_to_one

    rows = []
    for run in reversed(runs):
        reason = run.applied_reason or "not decided yet"
        whole = sums_to_one(run.domain)
        rows.append(
            [
                run.timestamp.strftime("%Y-%m-%d %H:%M"),
                run.source,
                _fmt(run.recommended, whole),
                _fmt(run.smoothed, whole),
                applied[run.status],
                reason if full else Text(reason, no_wrap=True, overflow="ellipsis"),
            ]
        )
    print_table(
        [
            Column("Time (UTC)", no_wrap=True),
            "Source",
            recommended,
            "Smoothed",
            Column("Applied?", no_wrap=True),
            "Reason",
        ],
        rows,
    )
    if more:
        click.echo(f"\nOlder runs: {older}")


def _no_runs_hint(symbol: str, history_dir: str | None) -> str:
    """What to run to get a first run: an update with the installed source, else the demo."""
    from .plugins import sources

    found = sources()
    if not found:
        return (
            f"No calibration runs for {symbol} yet, and no calibration source is installed (a host plugin adds "
            f"one; see --plugins-dir). To see runs now, replay the sample data: `{PROG} demo --out demo-output`, "
            f"then `{PROG} history {symbol} --data demo-output`."
        )
    return f"No calibration runs for {symbol} yet — run `{_update_command(symbol, history_dir, found)}` to record one."


def _update_command(symbol: str, history_dir: str | None, found: dict[str, Any]) -> str:
    source = "" if "harvested" in found else f" --source {next(iter(found))}"
    return again(f"update --underlying {symbol}{source}", history_dir)


def _print_changes(
    underlying: str | None,
    archive_dir: str | None,
    suggestions_dir: Any,
    as_json: bool,
    full: bool,
    *,
    history_dir: str | None = None,
    policy: Any = None,
) -> None:
    from .audit import changes

    found = changes(archive_dir, suggestions_dir, underlying, history_dir=history_dir, policy=policy)
    if as_json:
        emit_json([change.to_dict() for change in found])
        return
    if not found:
        click.echo("No change has been recorded yet.")
        return
    click.echo(f"{len(found)} recorded changes, oldest first:\n")
    watched = any(c.watch for c in found)  # the column only when the policy watches after apply
    columns: list[str | Column] = [
        Column("When (UTC)", no_wrap=True),
        "What",
        "Who",
        Column("Via", no_wrap=True),
        "Why",
    ]
    print_table(
        columns + (["Watch"] if watched else []),
        [
            [
                c.at.strftime("%Y-%m-%d %H:%M"),
                c.what,
                c.who,
                c.via,
                c.why if full else Text(c.why, no_wrap=True, overflow="ellipsis"),
            ]
            + ([c.watch or "–"] if watched else [])
            for c in found
        ],
    )


def actor_option(command: Callback) -> Callback:
    """``--actor NAME``: who acts (default: the login name); checked against the policy's permissions."""
    return click.option(
        "--actor", metavar="NAME", help="Who acts (default: your login name); recorded with the change."
    )(command)


def _underlying_option(command: Callback) -> Callback:
    return click.option("--underlying", "-u", required=True, help="The underlying symbol, e.g. SPY.")(command)


def _config_option(command: Callback) -> Callback:
    return click.option("--config", metavar="FILE", help="The live config file (default: the host's).")(command)


def _expect_option(command: Callback) -> Callback:
    return click.option(
        "--expect-version",
        metavar="VERSION",
        help="Refuse (exit 2) unless the live config is still this version (see `doctor --json`).",
    )(command)


@click.command()
@_underlying_option
@policy_options
@click.option("--source", default="harvested", show_default=True, help="Calibration source: live or harvested.")
@click.option("--date", "day", type=DateType(), help="Market date to calibrate, YYYY-MM-DD (default today).")
@_config_option
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@click.option("--force", is_flag=True, help="Apply even if the policy says no (recorded as forced by user).")
@click.option(
    "--force-values",
    type=click.Choice(["smoothed", "recommended"]),
    default="smoothed",
    show_default=True,
    help="With --force: which values to apply.",
)
@_expect_option
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when the update did not go live (with --dry-run: would not), for scripts; default: 0 either way.",
)
@actor_option
def update(
    underlying: str,
    policy_file: str | None,
    history_dir: str | None,
    archive_dir: str | None,
    as_json: bool,
    source: str,
    day: date | None,
    config: str | None,
    dry_run: bool,
    force: bool,
    force_values: ForcedValues,
    exit_code: bool,
    expect_version: str | None = None,
    actor: str | None = None,
) -> None:
    """Run a calibration, record it, and apply it if the policy says so."""
    from .pipeline import UpdateOptions, run_time_for, run_update
    from .plugins import get_source

    policy = load_policy(policy_file, history_dir)
    with spinner(f"Calibrating {underlying} ({source})…"):
        result = get_source(source).calibrate(underlying, day)
    outcome = run_update(
        result,
        underlying=underlying,
        source=source,
        target=_target(policy.domain, underlying, config),
        options=UpdateOptions(
            timestamp=run_time_for(day),
            force=force,
            force_values=force_values,
            dry_run=dry_run,
            expected_version=expect_version,
        ),
        context=cli_context(policy, actor, history_dir, archive_dir),
    )
    emit_json(outcome.to_dict()) if as_json else click.echo(outcome.summary())
    if exit_code and not (outcome.applied or (dry_run and outcome.route == "apply")):
        raise click.exceptions.Exit(1)


@click.command()
@_underlying_option
@policy_options
@_config_option
@click.option("--run-id", help="Apply this run instead of the latest.")
@click.option(
    "--use",
    type=click.Choice(["smoothed", "recommended"]),
    default="smoothed",
    show_default=True,
    help="Which values to apply.",
)
@_expect_option
@actor_option
def force(
    underlying: str,
    policy_file: str | None,
    history_dir: str | None,
    archive_dir: str | None,
    as_json: bool,
    config: str | None,
    run_id: str | None,
    use: ForcedValues,
    expect_version: str | None = None,
    actor: str | None = None,
) -> None:
    """Apply the latest recorded calibration now, whatever the rules say."""
    from .errors import CalibrationPolicyError, HistoryError
    from .pipeline import force_apply
    from .plugins import sources
    from .stores import open_store

    policy = load_policy(policy_file, history_dir)
    symbol = underlying.strip().upper()
    try:  # the permission check comes first (inside force_apply); the hint only when there is no run
        outcome = force_apply(
            underlying,
            target=_target(policy.domain, underlying, config),
            run_id=run_id,
            use=use,
            expected_version=expect_version,
            context=cli_context(policy, actor, history_dir, archive_dir),
        )
    except HistoryError:
        if run_id is None and (found := sources()) and not open_store(history_dir).latest(symbol, 1):
            raise CalibrationPolicyError(
                f"There is no calibration run for {symbol} to apply yet; record one with "
                f"`{_update_command(symbol, history_dir, found)}` first."
            ) from None
        raise
    emit_json(outcome.to_dict()) if as_json else click.echo(outcome.summary())


@click.command()
@click.argument("underlying")
@policy_options
@_config_option
def status(
    underlying: str,
    policy_file: str | None,
    history_dir: str | None,
    archive_dir: str | None,
    as_json: bool,
    config: str | None,
) -> None:
    """Show what is live for an underlying, since when, its latest run and the policy.

    UNDERLYING is its symbol, for example SPY.
    """
    from .status import status_report

    policy = load_policy(policy_file, history_dir)
    report = status_report(
        underlying,
        policy=policy,
        target=_target(policy.domain, underlying, config),
        history_dir=history_dir,
        archive_dir=archive_dir,
    )
    if as_json:
        emit_json(report.to_dict())
        return
    from .plugins import get_domain

    domain = get_domain(policy.domain)
    shown = fmt_value_set({r.scope: r.value for r in report.current}, 4, sums_to_one=domain.sums_to_one)
    click.echo(f"Current {report.title} for {report.underlying}:\n")
    print_table(
        [Column("Scope", no_wrap=True), Column(domain.value_heading(), justify="right"), "Live since"],
        [[r.label, shown[r.scope], r.live_since_text] for r in report.current],
    )
    click.echo()
    if report.latest is None:
        click.echo(f"No calibration has run yet for {report.underlying}.")
    else:
        run = report.latest
        click.echo(
            f"Latest calibration: {run.timestamp:%Y-%m-%d %H:%M} UTC ({run.source}) — {run.applied_reason or 'not decided yet'}"
        )
    if report.watch is not None:
        click.echo(f"Watch after apply of change {report.watch.change_id}: {report.watch.words}")
    click.echo()
    click.echo("Policy: " + policy.explain())


@click.command()
@policy_options
@click.option(
    "--underlying",
    "-u",
    "underlyings",
    multiple=True,
    help="Check (and repair) the live config of this underlying; repeatable (default: every one with runs).",
)
@_config_option
@click.option("--repair", is_flag=True, help="Settle interrupted changes and fix what can be fixed (safe to repeat).")
def doctor(
    policy_file: str | None,
    history_dir: str | None,
    archive_dir: str | None,
    as_json: bool,
    underlyings: tuple[str, ...],
    config: str | None,
    repair: bool,
) -> None:
    """Check the data folders: interrupted changes, archive, suggestions against the live config,
    runs, foreign files, run index. Exit code 1 when something is found."""
    from .doctor import examine
    from .stores import open_store

    try:
        policy = load_policy(policy_file, history_dir)
    except UnrecordedEditError:  # doctor still examines, with the last recorded policy, and reports the edit
        from .policy_versions import PolicyVersions

        last = PolicyVersions(Path(history_dir).parent if history_dir else data_root()).current()
        if last is None:  # an edit is only told apart from a recorded version
            raise
        policy = last.load()
    suggestions_dir = _suggestions_beside(history_dir)
    store = open_store(history_dir)
    if not underlyings:
        try:
            underlyings = tuple(store.underlyings())
        except ValueError:
            underlyings = ()
    targets = []
    for underlying in underlyings:
        try:  # each by its own domain's target: the scoring weights' runs are checked against the weights file
            latest = store.latest(underlying, 1)
            domain = latest[0].domain if latest else policy.domain
            targets.append(_target(domain, underlying, config if domain == policy.domain else None))
        except ValueError as error:
            click.echo(f"Cannot open the live config of {underlying}: {error}", err=True)
    findings = examine(
        targets, history_dir=history_dir, archive_dir=archive_dir, suggestions_dir=suggestions_dir, repair=repair
    )
    if as_json:
        from .pipeline import live_version

        versions = {}
        for target in targets:
            try:
                versions[target.name] = live_version(target)
            except ValueError:
                continue
        emit_json({"repaired": repair, "findings": [f.to_dict() for f in findings], "versions": versions})
    elif not findings:
        click.echo(
            ("Repaired; " if repair else "") + "nothing found: every change is settled and the data folders agree."
        )
    else:
        click.echo(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
            + (" left after repair" if repair else "")
            + ":"
        )
        print_table(["Check", "What", "What --repair does"], [[f.check, f.what, f.repair] for f in findings])
    if findings:
        click.get_current_context().exit(1)


@click.command("plugins")
@json_option
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List the installed plugins: package, hooks, and the names each registers."""
    from .plugins import installed_plugins

    owner: dict[str, str] = getattr(ctx.find_root().command, "command_owner", {})
    found = []
    for info in installed_plugins():
        plugin = info.to_dict()
        mine = sorted(name for name, by in owner.items() if by == info.name)
        if mine:  # commands are registered through click, so the plugin manager cannot list them
            plugin["registers"]["commands"] = mine
        found.append(plugin)
    if as_json:
        emit_json(found)
        return
    for plugin in found:
        click.echo(f"{plugin['name']} — {plugin['package']}")
        click.echo(f"   hooks: {', '.join(plugin['hooks'])}")
        for kind, names in sorted(plugin["registers"].items()):
            click.echo(f"   {kind}: {', '.join(names)}")


# -- the group ---------------------------------------------------------------------------------------

HELP = """Decide when a new calibration (IV multipliers, scoring weights) goes live, and say why.

Plugins add commands (see `calibration-policy plugins`). Every read command takes --json.

\b
Exit codes:
  0    done (also an update the policy did not apply, unless update --exit-code)
  1    a failure that is not bad input (a bug shows its traceback);
       with update --exit-code, also an update that did not go live
  2    bad input or usage: one sentence on stderr
  130  stopped with Ctrl+C
"""


class LazyGroup(click.Group):
    """A plugin's command group imported only when the line names it: ``LazyGroup("weights",
    "package.commands:weights", help=...)``. ``calibration-policy status`` then never pays for what
    ``weights …`` imports (pandas, the trades analysis), and the group reads exactly as if added whole."""

    def __init__(self, name: str, import_path: str, help: str) -> None:
        self._import_path = import_path
        self._real: click.Group | None = None
        super().__init__(name, help=help)

    @property
    def commands(self) -> MutableMapping[str, click.Command]:
        if self._real is None:
            module, _, attr = self._import_path.partition(":")
            real = getattr(importlib.import_module(module), attr)
            if not isinstance(real, click.Group):
                raise TypeError(f"{self._import_path} is not a click group")
            _one_root_everywhere(real)
            self._real = real
        return self._real.commands

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        """click.Group's constructor sets an empty dict; the sub-commands are the real group's."""


class CLI(click.Group):
    """The ``calibration-policy`` group; remembers which plugin added each command."""

    def __init__(self) -> None:
        super().__init__(
            PROG, help=HELP, no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"]}
        )
        plugins_dir_option(self)
        data_option(self)
        store_option(self)
        self.command_owner: dict[str, str] = {}


def build_cli() -> CLI:
    """The core commands, then each plugin's ``register_commands(cli)`` called on its own, in load order,
    so a command can be traced to its plugin and a failing or clashing plugin is refused alone."""
    from .plugins import get_plugin_manager, plugin_package

    cli = CLI()
    for command in (explain, history, update, force, status, doctor, plugins_command, migrate):
        cli.add_command(command)
    for impl in get_plugin_manager().hook.register_commands.get_hookimpls():
        plugin, before = impl.plugin_name, dict(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as error:  # a third party's bug must not take the other commands down
            cli.commands = before
            log.warning(
                "Plugin %s (%s) failed in register_commands: %s: %.200s",
                plugin,
                plugin_package(plugin),
                type(error).__name__,
                error,
            )
            continue
        for name, command in list(cli.commands.items()):
            if name not in before:
                cli.command_owner[name] = plugin
            elif command is not before[name]:
                cli.commands[name] = before[name]
                log.warning(
                    "Plugin %s (%s) registered the command name %r, which %s already uses; it is ignored.",
                    plugin,
                    plugin_package(plugin),
                    name,
                    cli.command_owner.get(name, PROG),
                )
    _one_root_everywhere(cli)
    return cli


def __getattr__(name: str) -> CLI:
    """``calibration_policy.cli.cli``: the group with every installed plugin's commands, for tools that want
    a click object by name (the docs site's CLI reference). Built on access, so importing this module loads
    no plugin."""
    if name == "cli":
        return build_cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_root_everywhere(group: click.Group) -> None:
    """Every command, a plugin's too, takes ``--data`` and ``--store`` after its name: main() reads them
    from the raw arguments, so a command that did not declare them must not refuse them either.
    ``migrate`` names both of its stores itself (``--from``, ``--to``)."""
    for name, command in group.commands.items():
        if isinstance(command, LazyGroup):
            continue  # its own sub-commands get the options when it is imported
        if isinstance(command, click.Group):
            _one_root_everywhere(command)
            continue
        flags = {flag for param in command.params for flag in getattr(param, "opts", ())}
        for flag, option in (("--data", data_option), ("--store", store_option)):
            if flag not in flags and not (flag == "--store" and name == "migrate"):
                option(command)


def _load_plugins(args: Sequence[str]) -> None:
    """Register the host's plugin folder: --plugins-dir (anywhere on the line), else $CALIBRATION_PLUGINS_DIR.
    Nothing else: the library never looks for a host in the folder it happens to run from.

    Read from the raw arguments, not by click, because the folder's plugins may add commands, and the
    group must have them before click parses the line."""
    from .plugins import load_plugins_dir

    folder = _raw_option(args, "--plugins-dir") or os.environ.get(PLUGINS_ENV)
    if folder:
        load_plugins_dir(folder)


def _raw_option(args: Sequence[str], name: str) -> str | None:
    """The value of ``name`` anywhere on the line before ``--`` (the last one wins)."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == name and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(name + "="):
            found = arg.partition("=")[2]
    return found


@contextlib.contextmanager
def _env(name: str, value: str | None):
    """``--data DIR`` or ``--store URL`` for this command only: main() may run many commands in one process (tests, hosts)."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@click.command()
@click.option(
    "--from", "source", required=True, metavar="DIR|URL", help="Copy from this store: a data folder or postgresql://…"
)
@click.option(
    "--to", "destination", required=True, metavar="DIR|URL", help="Into this store: a data folder or postgresql://…"
)
@json_option
def migrate(source: str, destination: str, as_json: bool) -> None:
    """Copy every run, suggestion and archived change from one store to another (and back), keeping
    their ids. Safe to run again: what is already there is left alone, so a killed migration is
    finished by running it again. Ends by comparing counts and content hashes; exit code 1 if they differ."""
    from rich.progress import Progress

    from .stores import store_at
    from .stores.migrate import count
    from .stores.migrate import migrate as copy_all

    src, dst = store_at(source), store_at(destination)
    total = count(src)
    err = console(stderr=True)
    with Progress(console=err, disable=not err.is_terminal, transient=True) as progress:
        task = progress.add_task(f"Copying {total:,} records to {mask(dst.describe())}", total=total)
        result = copy_all(src, dst, advance=lambda n: progress.advance(task, n))
    if as_json:
        emit_json({"verified": result.verified, "kinds": {k: vars(t) for k, t in result.tallies.items()}})
    else:
        click.echo(f"From {mask(src.describe())} to {mask(dst.describe())}: {result.summary()}")
    if not result.verified:
        raise click.exceptions.Exit(1)


def _fail(message: str, code: int) -> int:
    click.echo(f"Error: {mask(message)}", err=True)
    return code


def _sentence(text: str) -> str:
    """Some of click's messages end without a full stop; a hint after one must not run on."""
    return text if text.endswith((".", "?", "!")) else text + "."


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _load_plugins(args)
        # Not standalone: click hands errors back, so every one ends as one line on stderr, in-process too.
        with _env(DATA_ENV, _raw_option(args, "--data")), _env(STORE_ENV, _raw_option(args, "--store")):
            code = build_cli().main(args, prog_name=PROG, standalone_mode=False)
    except click.UsageError as error:  # click's own: one line instead of the usage block
        hint = f" Try '{error.ctx.command_path} --help'." if error.ctx else ""
        return _fail(_sentence(error.format_message()) + hint, error.exit_code)
    except click.ClickException as error:
        return _fail(error.format_message(), error.exit_code)
    except ValueError as error:  # ours and the host's input errors: one sentence, no traceback
        return _fail(str(error), 2)
    except (click.Abort, KeyboardInterrupt):  # click turns Ctrl+C into Abort
        click.echo("Stopped.", err=True)
        return 130
    except OSError as error:
        return _fail(f"{error.strerror or error} ({getattr(error, 'filename', '') or ''}).", 2)
    # `--help` and ctx.exit(n) come back as their code; a command that returns nothing succeeded.
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
