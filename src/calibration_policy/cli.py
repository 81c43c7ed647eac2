"""``calibration-policy``: record, decide and apply calibrations from a terminal or a cron job.

Every command prints plain English (or stable JSON with ``--json``) and exits non-zero with one
clear sentence when something is wrong; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, Sequence


PLUGINS_ENV = "CALIBRATION_PLUGINS_DIR"
DEFAULT_HOST_PLUGINS = Path("examples") / "options_agent" / "plugins"


# -- shared helpers -------------------------------------------------------------------------------


def _policy(args: argparse.Namespace):
    from .policy import CalibrationUpdatePolicy

    data_dir = Path(args.history_dir).parent if getattr(args, "history_dir", None) else Path("data")
    return CalibrationUpdatePolicy.load(getattr(args, "policy", None), data_dir=data_dir)


def _plugins(args: argparse.Namespace, default_host: bool = False) -> None:
    from .plugins import load_plugins_dir

    folder = args.plugins_dir or os.environ.get(PLUGINS_ENV)
    if folder is None and default_host and DEFAULT_HOST_PLUGINS.is_dir():
        folder = DEFAULT_HOST_PLUGINS
    if folder:
        load_plugins_dir(folder)


def _target(domain: str, underlying: str, path: str | None):
    from .plugins import get_target_factory

    return get_target_factory(domain)(underlying, path)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, for example 2025-12-10") from None


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _table(headers: Sequence[str], rows: list[Sequence[Any]], wrap_last: int = 70) -> str:
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row[-1]) > wrap_last:
            row[-1] = row[-1][: wrap_last - 1] + "…"
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _fmt(values: dict[str, float] | None) -> str:
    """The global multiplier, or for a domain without one (scoring weights) every value, briefly."""
    if not values:
        return "–"
    if "global" in values:
        return f"{values['global']:.3f}"
    return " ".join(f"{scope[:4]} {value:.2f}" for scope, value in values.items())


# -- commands ---------------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if args.json:
        _emit_json({"explanation": policy.explain(), "policy": policy.model_dump(mode="json")})
    else:
        print(policy.explain())
    return 0


def run_rows(runs) -> list[list[str]]:
    rows = []
    for run in reversed(runs):
        applied = {"applied": "✓ yes", "not applied": "– no", "pending": "? pending", "undecided": "…"}[run.status]
        rows.append([
            run.timestamp.strftime("%Y-%m-%d %H:%M"), run.source, _fmt(run.recommended),
            _fmt(run.smoothed), applied, run.applied_reason or "not decided yet",
        ])
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    from .history import open_store

    runs = open_store(args.history_dir).latest(args.underlying, args.limit)
    if args.json:
        _emit_json([run.model_dump(mode="json") for run in reversed(runs)])
        return 0
    if not runs:
        print(f"No calibration runs for {args.underlying.upper()} yet — run `calibration-policy update --underlying {args.underlying.upper()} …`.")
        return 0
    print(f"Last {len(runs)} calibration runs for {runs[0].underlying}, newest first:\n")
    recommended = "Rec Global" if "global" in runs[-1].recommended else "Recommended"
    print(_table(["Time (UTC)", "Source", recommended, "Smoothed", "Applied?", "Reason"], run_rows(runs), wrap_last=10_000 if args.full else 70))
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from .plugins import get_source
    from .pipeline import run_time_for, run_update

    _plugins(args, default_host=True)
    policy = _policy(args)
    source = get_source(args.source)
    result = source.calibrate(args.underlying, args.date)
    target = _target(policy.domain, args.underlying, args.config)
    outcome = run_update(
        result, underlying=args.underlying, source=args.source, target=target, policy=policy,
        history_dir=args.history_dir, archive_dir=args.archive_dir, timestamp=run_time_for(args.date),
        force=args.force, force_values=args.force_values, dry_run=args.dry_run,
    )
    _emit_json(outcome.to_dict()) if args.json else print(outcome.summary())
    return 0


def cmd_force(args: argparse.Namespace) -> int:
    from .pipeline import force_apply

    _plugins(args, default_host=True)
    policy = _policy(args)
    target = _target(policy.domain, args.underlying, args.config)
    outcome = force_apply(
        args.underlying, target=target, policy=policy, history_dir=args.history_dir,
        archive_dir=args.archive_dir, run_id=args.run_id, use=args.use,
    )
    _emit_json(outcome.to_dict()) if args.json else print(outcome.summary())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import status_report

    _plugins(args, default_host=True)
    policy = _policy(args)
    report = status_report(args.underlying, policy=policy, target=_target(policy.domain, args.underlying, args.config),
                           history_dir=args.history_dir, archive_dir=args.archive_dir)
    if args.json:
        _emit_json(report.to_dict())
        return 0
    print(f"Current {report.title} for {report.underlying}:\n")
    print(_table(["Scope", "Value", "Last updated"], [[r.label, f"{r.value:.4f}", r.last_updated_text] for r in report.current]))
    print()
    if report.latest is None:
        print(f"No calibration has run yet for {report.underlying}.")
    else:
        run = report.latest
        print(f"Latest calibration: {run.timestamp:%Y-%m-%d %H:%M} UTC ({run.source}) — {run.applied_reason or 'not decided yet'}")
    print()
    print("Policy: " + policy.explain())
    return 0


# -- parser -----------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, underlying: bool = True, positional: bool = False) -> None:
    if underlying and positional:
        parser.add_argument("underlying", help="the underlying symbol, e.g. SPY")
    elif underlying:
        parser.add_argument("--underlying", "-u", required=True, help="the underlying symbol, e.g. SPY")
    parser.add_argument("--policy", metavar="FILE", help="policy TOML file (default: $CALIBRATION_POLICY, else data/calibration_policy.toml, else built-in)")
    parser.add_argument("--history-dir", metavar="DIR", help="where runs are kept (default: $CALIBRATION_HISTORY_DIR, else data/calibration_runs)")
    parser.add_argument("--archive-dir", metavar="DIR", help="where replaced configs are kept (default: $CALIBRATION_ARCHIVE_DIR, else data/config_archive)")
    parser.add_argument("--plugins-dir", metavar="DIR", help=f"folder of host plugins (sources, targets); default ${PLUGINS_ENV}, else {DEFAULT_HOST_PLUGINS}")
    parser.add_argument("--json", action="store_true", help="print stable JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calibration-policy",
        description="Decide when a new calibration (IV multipliers, scoring weights) goes live, and say why.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser("explain", help="say in plain English what the policy does, with its numbers")
    _common(explain, underlying=False)
    explain.set_defaults(func=cmd_explain)

    history = commands.add_parser("history", help="list recent calibration runs and whether each went live")
    _common(history, positional=True)
    history.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
    history.add_argument("--full", action="store_true", help="do not shorten long reasons")
    history.set_defaults(func=cmd_history)

    update = commands.add_parser("update", help="run a calibration, record it, and apply it if the policy says so")
    _common(update)
    update.add_argument("--source", default="harvested", help="calibration source: live or harvested (default harvested)")
    update.add_argument("--date", type=_date, help="market date to calibrate, YYYY-MM-DD (default today)")
    update.add_argument("--config", metavar="FILE", help="the live config file to update (default: the host's)")
    update.add_argument("--dry-run", action="store_true", help="show what would happen; write nothing")
    update.add_argument("--force", action="store_true", help="apply even if the policy says no (recorded as forced by user)")
    update.add_argument("--force-values", choices=["smoothed", "recommended"], default="smoothed", help="with --force: which values to apply")
    update.set_defaults(func=cmd_update)

    force = commands.add_parser("force", help="apply the latest recorded calibration now, whatever the rules say")
    _common(force)
    force.add_argument("--config", metavar="FILE", help="the live config file to update (default: the host's)")
    force.add_argument("--run-id", help="apply this run instead of the latest")
    force.add_argument("--use", choices=["smoothed", "recommended"], default="smoothed", help="which values to apply")
    force.set_defaults(func=cmd_force)

    status = commands.add_parser("status", help="current values, last update, latest run and the policy")
    _common(status, positional=True)
    status.add_argument("--config", metavar="FILE", help="the live config file (default: the host's)")
    status.set_defaults(func=cmd_status)

    from .plugins import get_plugin_manager

    get_plugin_manager().hook.register_commands(commands=commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:  # ours and the host's input errors: one sentence, no traceback
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except OSError as error:
        print(f"Error: {error.strerror or error} ({getattr(error, 'filename', '') or ''}).", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
