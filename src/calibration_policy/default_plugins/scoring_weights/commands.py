"""``calibration-policy weights …``: analyse trades, suggest, review, roll back and look back.

Registered by the ``scoring_weights`` default plugin through the ``register_commands`` hook, so
the core CLI knows nothing about weights. Also adds ``calibration-policy as-of``, which answers
"what was live on date X" for any archived target.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Sequence
from typing import Any

from calibration_policy.archive import Archive, Period, resolve_archive_dir
from calibration_policy.cli import _emit_json, _table
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.review import ReviewStore, Suggestion, rollback

from .analysis import DEFAULT_TRADES_FILE, TRADING_THRESHOLD, analysis_text, analyze_trades
from .settings import load_weights_settings
from .domain import DEFAULT_WEIGHTS_FILE, FACTORS, weights_target
from .flow import as_of_moment, live_weights, run_auto, suggest_weights


def _weights_text(values: dict[str, float]) -> str:
    """Weights in the model's order; another target's scopes with global first."""
    order = lambda scope: (FACTORS.index(scope) if scope in FACTORS else len(FACTORS), scope != "global", scope)
    return ", ".join(f"{scope} {values[scope]:.4f}" for scope in sorted(values, key=order))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "before records began"


def _reviewer(args: argparse.Namespace) -> str:
    if args.by:
        return args.by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise CalibrationPolicyError("Say who is reviewing with --by NAME.") from None


def _target(args: argparse.Namespace):
    return weights_target(path=args.weights)


def _suggestion_text(item: Suggestion) -> str:
    lines = [f"Suggestion {item.suggestion_id} ({item.status}), made {_when(item.created_at)}", item.reason, ""]
    analysis = item.details.get("analysis")
    if analysis:
        lines += [analysis_text(analysis), ""]
    lines.append(f"Suggested: {_weights_text(item.values)}")
    lines.append(f"Live when suggested: {_weights_text(item.current_values)}")
    if item.status == "expired":
        lines.append(f"Expired: {item.expired_reason}")
    elif item.status != "pending":
        lines.append(f"{item.status.capitalize()} at {_when(item.reviewed_at)} by {item.reviewer}" + (f": {item.notes}" if item.notes else ""))
        if item.applied_values:
            lines.append(f"Applied: {_weights_text(item.applied_values)} (change {item.change_id})")
    return "\n".join(lines)


def _period_text(period: Period) -> str:
    until = f"until {_when(period.until)}" if period.until else "still live"
    how = f"{period.change.kind} by {period.change.actor}: {period.change.reason}" if period.change else "the weights before the first recorded change"
    return f"{_weights_text(period.values)}\n   live from {_when(period.since)}, {until}\n   {how}"


# -- commands ---------------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    analysis = analyze_trades(args.trades, live_weights(_target(args)), min_trades=args.min_trades, threshold=args.threshold)
    _emit_json(analysis.to_dict()) if args.json else print(analysis.text())
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    settings = load_weights_settings(args.settings)
    outcome = suggest_weights(args.trades, _target(args), policy=settings.policy, threshold=args.threshold,
                              history_dir=args.history_dir, suggestions_dir=args.suggestions_dir)
    if args.json:
        _emit_json(outcome.to_dict())
    else:
        print(outcome.analysis.text() + "\n" if outcome.analysis else "", end="")
        print(outcome.message)
    return 0


def cmd_auto(args: argparse.Namespace) -> int:
    settings = load_weights_settings(args.settings)
    outcome = run_auto(args.trades, _target(args), settings.auto, policy=settings.policy, threshold=args.threshold,
                       history_dir=args.history_dir, suggestions_dir=args.suggestions_dir, archive_dir=args.archive_dir)
    _emit_json(outcome.to_dict()) if args.json else print(outcome.message)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    target = _target(args)
    store = ReviewStore(args.suggestions_dir)
    if args.suggestion_id:
        item = store.get(args.suggestion_id)
        _emit_json(item.model_dump(mode="json")) if args.json else print(_suggestion_text(item))
        return 0
    current = live_weights(target)
    pending = store.all(target=target.name, status="pending")
    if args.json:
        _emit_json({"current": current, "pending": [p.model_dump(mode="json") for p in pending]})
        return 0
    print(f"Live weights ({target.path}): {_weights_text(current)}")
    if not pending:
        print("No suggestion is waiting for review.")
    for item in pending:
        print("\n" + _suggestion_text(item))
        print(f"\nApprove: calibration-policy weights approve {item.suggestion_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    items = ReviewStore(args.suggestions_dir).all(target=_target(args).name, status=args.status)
    if args.json:
        _emit_json([item.model_dump(mode="json") for item in items])
        return 0
    if not items:
        print("No weight suggestions yet — run `calibration-policy weights suggest`.")
        return 0
    rows: list[Sequence[Any]] = [
        [item.suggestion_id, item.status, _when(item.created_at), item.reviewer or "–", _weights_text(item.values)]
        for item in reversed(items)]
    print(_table(["Suggestion", "Status", "Made", "Reviewer", "Weights"], rows, wrap_last=10_000))
    return 0


def _review(args: argparse.Namespace, action: str) -> int:
    store, who, notes = ReviewStore(args.suggestions_dir), _reviewer(args), args.notes
    dirs = {"archive_dir": args.archive_dir, "history_dir": args.history_dir}
    if action == "approve":
        item = store.approve(args.suggestion_id, target=_target(args), reviewer=who, notes=notes, **dirs)
    elif action == "modify":
        values = {factor: getattr(args, factor) for factor in FACTORS}
        item = store.modify(args.suggestion_id, values, target=_target(args), reviewer=who, notes=notes, **dirs)
    else:
        item = store.reject(args.suggestion_id, reviewer=who, notes=notes)
    if args.json:
        _emit_json(item.model_dump(mode="json"))
    elif item.applied_values:
        print(f"Suggestion {item.suggestion_id} {item.status} by {who}; live weights now {_weights_text(item.applied_values)} "
              f"(previous ones archived as change {item.change_id}).")
    else:
        print(f"Suggestion {item.suggestion_id} rejected by {who}; the live weights are unchanged.")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    periods = Archive(args.archive_dir, _target(args).name).periods()
    if args.json:
        _emit_json([_period_dict(p) for p in reversed(periods)])
        return 0
    if not periods:
        print("No weights change has been recorded yet.")
        return 0
    print("Weight sets that were live, newest first (roll back with `calibration-policy weights rollback CHANGE`):\n")
    for period in reversed(periods):
        print(f"[{period.change.change_id if period.change else 'original'}] {_period_text(period)}")
    return 0


def _period_dict(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {
        "values": period.values, "since": period.since.isoformat() if period.since else None,
        "until": period.until.isoformat() if period.until else None,
        "change": period.change.model_dump(mode="json", exclude={"previous_snapshot", "new_snapshot"}) if period.change else None,
    }


def cmd_rollback(args: argparse.Namespace) -> int:
    entry = rollback(_target(args), args.to, archive_dir=args.archive_dir, actor=_reviewer(args))
    _emit_json(entry.model_dump(mode="json")) if args.json else print(
        f"{entry.reason}; live weights now {_weights_text(entry.new_values)} (change {entry.change_id}).")
    return 0


def _as_of(args: argparse.Namespace, target_name: str) -> int:
    when = as_of_moment(args.when)
    period = Archive(args.archive_dir, target_name).as_of(when)
    if args.json:
        _emit_json({"target": target_name, "as_of": when.isoformat(), "period": _period_dict(period)})
        return 0
    if period is None:
        known = ", ".join(known_targets(args.archive_dir)) or "none yet"
        raise CalibrationPolicyError(
            f"The archive has no change of {target_name} recorded, so it cannot say what was live on {args.when} "
            f"(archived targets: {known}).")
    print(f"Live on {args.when} ({when:%Y-%m-%d %H:%M} UTC): {_period_text(period)}")
    return 0


def known_targets(archive_dir: str | os.PathLike[str] | None) -> list[str]:
    folder = resolve_archive_dir(archive_dir)
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def cmd_as_of(args: argparse.Namespace) -> int:
    return _as_of(args, args.target)


def cmd_weights_as_of(args: argparse.Namespace) -> int:
    return _as_of(args, _target(args).name)


# -- parser -----------------------------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser, trades: bool = False) -> None:
    if trades:
        parser.add_argument("--trades", default=str(DEFAULT_TRADES_FILE), metavar="FILE",
                            help=f"trades Parquet file (default {DEFAULT_TRADES_FILE})")
        parser.add_argument("--threshold", type=float, default=TRADING_THRESHOLD,
                            help=f"trading threshold for the improvement estimate (default {TRADING_THRESHOLD})")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS_FILE), metavar="FILE",
                        help=f"the live weights JSON file (default {DEFAULT_WEIGHTS_FILE})")
    parser.add_argument("--settings", metavar="FILE",
                        help="weights settings TOML with [policy] and [auto] (default $CALIBRATION_WEIGHTS_SETTINGS, "
                             "else data/scoring_weights.toml, else built-in)")
    parser.add_argument("--history-dir", metavar="DIR", help="where runs are kept (default data/calibration_runs)")
    parser.add_argument("--archive-dir", metavar="DIR", help="where replaced weights are kept (default data/config_archive)")
    parser.add_argument("--suggestions-dir", metavar="DIR", help="where suggestions wait (default data/suggestions)")
    parser.add_argument("--json", action="store_true", help="print stable JSON instead of text")


def _review_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suggestion_id", metavar="SUGGESTION", help="the suggestion's id (see `weights list`)")
    parser.add_argument("--by", metavar="NAME", help="who reviews (default: your login name)")
    parser.add_argument("--notes", help="why, in a sentence; kept with the suggestion and the archive")
    _options(parser)


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_commands(commands: Any) -> None:
    """Add ``weights`` (with its sub-commands) and ``as-of`` to the ``calibration-policy`` CLI."""
    weights = commands.add_parser("weights", help="scoring-model weights: analyse trades, suggest, review, roll back")
    sub = weights.add_subparsers(dest="weights_command", required=True, metavar="WEIGHTS_COMMAND")

    analyze = sub.add_parser("analyze", help="how each factor predicted PnL, and the weights that would follow")
    _options(analyze, trades=True)
    analyze.add_argument("--min-trades", type=int, default=100, help="fewest trades for a suggestion (default 100)")
    analyze.set_defaults(func=cmd_analyze)

    suggest = sub.add_parser("suggest", help="analyse, record the run and leave a suggestion for review")
    _options(suggest, trades=True)
    suggest.set_defaults(func=cmd_suggest)

    auto = sub.add_parser("auto", help="one auto-mode step (for cron): suggest when enough new trades, maybe apply")
    _options(auto, trades=True)
    auto.set_defaults(func=cmd_auto)

    show = sub.add_parser("show", help="the live weights and what waits for review (or one suggestion)")
    show.add_argument("suggestion_id", nargs="?", metavar="SUGGESTION", help="show this suggestion instead")
    _options(show)
    show.set_defaults(func=cmd_show)

    listing = sub.add_parser("list", help="weight suggestions, newest first")
    listing.add_argument("--status", choices=["pending", "approved", "modified", "rejected", "expired"])
    _options(listing)
    listing.set_defaults(func=cmd_list)

    approve = sub.add_parser("approve", help="put a suggestion's weights live (the old ones are archived)")
    _review_options(approve)
    approve.set_defaults(func=lambda args: _review(args, "approve"))

    modify = sub.add_parser("modify", help="put your own weights live instead of the suggested ones")
    for factor in FACTORS:
        modify.add_argument(f"--{factor}", type=_fraction, required=True, help=f"{factor} weight, 0–1")
    _review_options(modify)
    modify.set_defaults(func=lambda args: _review(args, "modify"))

    reject = sub.add_parser("reject", help="close a suggestion; the live weights stay")
    _review_options(reject)
    reject.set_defaults(func=lambda args: _review(args, "reject"))

    history = sub.add_parser("history", help="every weight set that was live, with when, who and why")
    _options(history)
    history.set_defaults(func=cmd_history)

    back = sub.add_parser("rollback", help="make an archived weight set live again (itself an archived change)")
    back.add_argument("to", metavar="CHANGE", help="the change id that made the set live (see `weights history`), or original")
    back.add_argument("--by", metavar="NAME", help="who rolls back (default: your login name)")
    _options(back)
    back.set_defaults(func=cmd_rollback)

    as_of = sub.add_parser("as-of", help="the weights that were live on a date (end of that UTC day) or at a time")
    as_of.add_argument("when", metavar="DATE", help="YYYY-MM-DD or an ISO time such as 2025-12-01T14:00Z")
    _options(as_of)
    as_of.set_defaults(func=cmd_weights_as_of)

    general = commands.add_parser("as-of", help="what any archived target held on a date (end of that UTC day) or at a time")
    general.add_argument("when", metavar="DATE", help="YYYY-MM-DD or an ISO time such as 2025-12-01T14:00Z")
    general.add_argument("--target", required=True, help="the target's name: its archive folder, e.g. scoring_weights or vol_surface")
    general.add_argument("--archive-dir", metavar="DIR", help="where replaced configs are kept (default data/config_archive)")
    general.add_argument("--json", action="store_true", help="print stable JSON instead of text")
    general.set_defaults(func=cmd_as_of)
