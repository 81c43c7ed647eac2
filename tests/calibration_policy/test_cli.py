"""The ``calibration-policy`` command: plain output, stable JSON, exit 2 with one sentence on bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from calibration_policy import hookimpl
from calibration_policy.cli import main
from calibration_policy.plugins import get_plugin_manager

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "examples" / "options_agent" / "plugins"
SURFACE = REPO_ROOT / "examples" / "options_agent" / "config" / "vol_surface.json"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "vol_surface.json"
    shutil.copyfile(SURFACE, config)
    return {"config": str(config), "history": str(tmp_path / "runs"), "archive": str(tmp_path / "archive")}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def update(capsys, env, day: str, *extra: str):
    return cli(
        capsys,
        "update",
        "--underlying",
        "SPY",
        "--date",
        day,
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
        *extra,
    )


def test_explain_uses_the_policy_file(capsys, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("min_delta_global = 0.07\nmin_sample_size = 300\nsmoothing_window_days = 21\n")
    code, out, _ = cli(capsys, "explain", "--policy", str(policy))
    assert code == 0
    assert "last 21 days" in out and "at least 0.07 for the global value" in out and "at least 300 options" in out


def test_update_history_status_and_force(capsys, env, store_url):  # on both stores: the CLI works unchanged
    code, out, err = update(capsys, env, "2025-09-11")
    assert code == 0, err
    assert out.startswith("SPY 2025-09-11 21:00 UTC (harvested): Applied: Global 1.00 → 1.05")
    code, out, _ = update(capsys, env, "2025-09-12")
    assert "Not applied: change too small" in out

    code, out, _ = cli(capsys, "history", "spy", "--history-dir", env["history"])
    lines = out.splitlines()
    assert lines[0] == "Last 2 calibration runs for SPY (the global value), newest first:"
    assert lines[2].split() == ["Time", "(UTC)", "Source", "Recommended", "Smoothed", "Applied?", "Reason"]
    assert "2025-09-12" in lines[4] and "– no" in lines[4] and "2025-09-11" in lines[5] and "✓ yes" in lines[5]

    code, out, _ = cli(capsys, "history", "SPY", "--history-dir", env["history"], "--json", "--limit", "1")
    [run] = json.loads(out)
    assert run["applied"] is False and run["underlying"] == "SPY" and "recommended_iv_multiplier" in run

    code, out, _ = cli(
        capsys,
        "status",
        "SPY",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
    )
    assert "Current IV multipliers for SPY" in out and "Weekly (3–10d)" in out and "Policy: The system smooths" in out

    code, out, _ = cli(
        capsys,
        "force",
        "--underlying",
        "SPY",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
        "--json",
    )
    report = json.loads(out)
    assert report["applied"] and report["reason"].startswith("Applied: forced by user")

    code, out, _ = cli(
        capsys,
        "doctor",
        "--underlying",
        "SPY",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
    )
    assert code == 0, out  # nothing interrupted, nothing inconsistent, on either store


def test_force_use_recommended_reports_in_every_scope_what_it_wrote(capsys, env):
    """The JSON a script reads says what went live: each scope's new value is the recommended one written,
    not the smoothed one the policy judged (which the reason still quotes)."""
    assert update(capsys, env, "2025-09-11")[0] == 0
    assert update(capsys, env, "2025-09-12")[0] == 0  # not applied: smoothed and recommended now differ
    dirs = ["--history-dir", env["history"], "--archive-dir", env["archive"]]
    code, out, err = cli(
        capsys, "force", "-u", "SPY", "--plugins-dir", str(PLUGINS), "--config", env["config"], *dirs,
        "--use", "recommended", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["applied_values"] == report["recommended"] != report["smoothed"]
    scopes = {s["scope"]: s for s in report["decision"]["scopes"]}
    assert {name: scopes[name]["new"] for name in report["applied_values"]} == pytest.approx(report["applied_values"])
    for scope in scopes.values():
        assert scope["delta"] == pytest.approx(scope["new"] - scope["old"])
    assert "the policy alone said: change too small" in report["reason"]


def test_update_json_is_stable(capsys, env, store_url):
    code, out, _ = update(capsys, env, "2025-09-11", "--json")
    report = json.loads(out)
    assert set(report) == {
        "underlying",
        "run_id",
        "timestamp",
        "source",
        "dry_run",
        "applied",
        "would_apply",
        "reason",
        "recommended",
        "smoothed",
        "applied_values",
        "change_id",
        "decision",
    }
    assert set(report["decision"]) == {"apply", "reason", "forced", "values", "scopes", "verdicts"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["history", "../x"], "not a valid underlying symbol"),
        (["history", "SPY", "--limit", "0"], "limit must be a whole number"),
        (["explain", "--policy", "/nonexistent/p.toml"], "does not exist"),
        (["update", "--underlying", "SPY", "--source", "nosuch"], "Unknown calibration source 'nosuch'"),
        (["update", "--underlying", "SPY", "--date", "2030-01-01"], "No harvested data for SPY"),
        (["force", "--underlying", "QQQ"], "no calibration run for QQQ"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(capsys, env, args, message):
    extra = ["--plugins-dir", str(PLUGINS), "--config", env["config"]] if args[0] in ("update", "force") else []
    code, out, err = cli(capsys, *args, *extra, *(["--history-dir", env["history"]] if args[0] != "explain" else []))
    assert code == 2
    assert message in err and err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert not Path(env["history"]).exists()


def test_console_script_runs_and_bad_date_is_explained():
    done = subprocess.run(
        [sys.executable, "-m", "calibration_policy.cli", "update", "--underlying", "SPY", "--date", "12/10/2025"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "use YYYY-MM-DD" in done.stderr and "Traceback" not in done.stderr
    help_text = subprocess.run(["calibration-policy", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "Decide when a new calibration" in help_text


def test_tables_are_plain_text_when_output_is_captured(capsys, env, monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # rich would colour a pipe on request
        monkeypatch.delenv(name, raising=False)
    update(capsys, env, "2025-09-11")
    code, out, _ = cli(
        capsys,
        "status",
        "SPY",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
    )
    assert code == 0 and "\x1b[" not in out
    assert out.splitlines()[2].split() == ["Scope", "IV", "multiplier", "Live", "since"]  # the domain's own word


def plugin_blocks(text: str) -> dict[str, list[str]]:
    """`plugins` text output: each plugin's heading line with its indented lines."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith(" "):
            blocks[heading].append(line.strip())
        else:
            heading = line
            blocks[heading] = []
    return blocks


def test_plugins_lists_each_plugin_with_its_package_hooks_and_names(capsys):
    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    weights = plugin_blocks(out)["calibration_policy.default_plugins.scoring_weights — calibration-policy (built-in)"]
    assert weights == [
        "hooks: register_change_kinds, register_commands, register_domains, register_rules, register_targets",
        "change_kinds: weights_auto, weights_suggest",
        "commands: as-of, weights",
        "domains: scoring_weights",
        "rules: out_of_sample",
        "targets: scoring_weights",
    ]

    code, out, _ = cli(capsys, "plugins", "--json")
    listed = {plugin["name"]: plugin for plugin in json.loads(out)}
    assert listed["calibration_policy.default_plugins.scoring_weights"] == {
        "name": "calibration_policy.default_plugins.scoring_weights",
        "package": "calibration-policy (built-in)",
        "hooks": [
            "register_change_kinds",
            "register_commands",
            "register_domains",
            "register_rules",
            "register_targets",
        ],
        "registers": {
            "change_kinds": ["weights_auto", "weights_suggest"],
            "commands": ["as-of", "weights"],
            "domains": ["scoring_weights"],
            "rules": ["out_of_sample"],
            "targets": ["scoring_weights"],
        },
    }
    assert listed["calibration_policy.default_plugins.demo"]["registers"] == {"commands": ["demo"]}
    assert listed["ui"]["registers"] == {  # the panel, through its entry point: its command and built-in tabs
        "commands": ["serve"],
        "panel_tabs": ["lab", "runs", "scoring_weights"],
    }
    assert set(listed["calibration_policy.default_plugins.smoothers"]["registers"]["smoothers"]) >= {
        "ewma",
        "rolling_median",
    }


class Greeting:
    """A third party's plugin, as its author would write it: a click command through the hook."""

    @hookimpl
    def register_commands(self, cli):
        @cli.command()
        @click.argument("name")
        @click.option("--shout", is_flag=True, help="Say it loudly.")
        def greet(name: str, shout: bool) -> None:
            """Say hello to NAME."""
            text = f"Hello, {name}!"
            click.echo(text.upper() if shout else text)


def test_a_third_party_command_appears_in_help_runs_and_is_listed(capsys, fresh_plugins):
    get_plugin_manager().register(Greeting(), name="greeting")
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and re.search(r"^  greet +Say hello to NAME\.$", out, re.M)
    assert cli(capsys, "greet", "Ana", "--shout") == (0, "HELLO, ANA!\n", "")
    code, _, err = cli(capsys, "greet")
    assert code == 2 and err == "Error: Missing argument 'NAME'. Try 'calibration-policy greet --help'.\n"
    code, out, _ = cli(capsys, "plugins", "--json")
    assert [p for p in json.loads(out) if p["name"] == "greeting"] == [
        {
            "name": "greeting",
            "package": "registered in process",
            "hooks": ["register_commands"],
            "registers": {"commands": ["greet"]},
        }
    ]


def test_a_plugin_that_fails_or_takes_a_command_name_is_refused_alone(capsys, caplog, fresh_plugins):
    class Broken:
        @hookimpl
        def register_commands(self, cli):
            cli.command("half")(lambda: None)
            raise RuntimeError("no database")

    class Hijack:
        @hookimpl
        def register_commands(self, cli):
            cli.command("status")(lambda: click.echo("hijacked"))

    get_plugin_manager().register(Broken(), name="broken")
    get_plugin_manager().register(Hijack(), name="hijack")
    get_plugin_manager().register(Greeting(), name="greeting")
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and " half " not in out and "greet " in out
    assert "Plugin broken (registered in process) failed in register_commands: RuntimeError: no database" in caplog.text
    assert (
        "Plugin hijack (registered in process) registered the command name 'status', which calibration-policy "
        "already uses; it is ignored."
    ) in caplog.text
    code, out, _ = cli(capsys, "status", "--help")
    assert code == 0 and "Show what is live for an underlying" in out


def test_a_plugins_dir_can_add_a_command(capsys, tmp_path, fresh_plugins):
    """The folder is read before click parses the line, so its command exists when click looks for it."""
    (tmp_path / "host.py").write_text(
        textwrap.dedent("""
        import click
        from calibration_policy import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def ping():
                \"\"\"Answer pong.\"\"\"
                click.echo("pong")
        """),
        encoding="utf-8",
    )
    assert cli(capsys, "--plugins-dir", str(tmp_path), "ping") == (0, "pong\n", "")


def test_one_data_root_for_every_folder_and_the_weights(capsys, tmp_path, monkeypatch):
    for name in (
        "CALIBRATION_DATA",
        "CALIBRATION_HISTORY_DIR",
        "CALIBRATION_ARCHIVE_DIR",
        "CALIBRATION_SUGGESTIONS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder
    root = tmp_path / "root"
    root.mkdir()
    config = root / "vol_surface.json"
    shutil.copyfile(SURFACE, config)
    (root / "calibration_policy.toml").write_text("require_approval = true\n")
    code, out, err = cli(
        capsys,
        "update",
        "--underlying",
        "SPY",
        "--date",
        "2025-09-11",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        str(config),
        "--data",
        str(root),
    )
    assert code == 0, err
    assert "Waiting for approval" in out  # the policy next to the data was used
    assert len(list((root / "calibration_runs").glob("*_SPY_harvested.json"))) == 1
    assert len(list((root / "suggestions").glob("*.json"))) == 1
    shutil.copyfile(REPO_ROOT / "data" / "scoring_weights.json", root / "scoring_weights.json")
    shutil.copyfile(REPO_ROOT / "data" / "trades.parquet", root / "trades.parquet")
    code, out, err = cli(capsys, "weights", "suggest", "--data", str(root))
    assert code == 0, err
    assert len(list((root / "suggestions").glob("*scoring_weights*.json"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert "CALIBRATION_DATA" not in os.environ  # --data held for that command only


def test_a_suggestion_waits_beside_the_history_folder_given(capsys, env, tmp_path, monkeypatch):
    monkeypatch.delenv("CALIBRATION_SUGGESTIONS_DIR")
    monkeypatch.chdir(tmp_path)
    policy = tmp_path / "approval.toml"
    policy.write_text("require_approval = true\n")
    code, out, err = update(capsys, env, "2025-09-11", "--policy", str(policy))
    assert code == 0 and "Waiting for approval" in out, err
    assert len(list((Path(env["history"]).parent / "suggestions").glob("*.json"))) == 1
    assert not (tmp_path / "data").exists()


def test_weights_analyze_shows_in_sample_beside_unseen_trades(capsys, tmp_path):
    weights = tmp_path / "w.json"
    shutil.copyfile(REPO_ROOT / "data" / "scoring_weights.json", weights)
    trades = str(REPO_ROOT / "data" / "trades.parquet")
    code, out, err = cli(capsys, "weights", "analyze", "--trades", trades, "--weights", str(weights))
    assert code == 0, err
    assert "Measured on the trades it was fitted to (all 600 trades)" in out
    assert "Measured on later trades it never saw (480 trades in 4 folds" in out and "\np-value 0.0" in out
    code, out, _ = cli(capsys, "weights", "analyze", "--trades", trades, "--weights", str(weights), "--json")
    evidence = json.loads(out)["evidence"]
    assert evidence["in_sample"]["label"] == "measured on the trades it was fitted to"
    assert evidence["out_of_sample"]["trades"] == 480
    code, out, _ = cli(capsys, "weights", "analyze", "--trades", trades, "--weights", str(weights), "--no-evidence")
    assert "never saw" not in out


def test_weights_analyze_says_synthetic_explains_each_figure_and_fits_100_columns(capsys, tmp_path):
    """Issue 25: no word that the bundled trades are synthetic, lines up to 229 characters, a fold table 150 wide."""
    weights = tmp_path / "w.json"
    shutil.copyfile(REPO_ROOT / "data" / "scoring_weights.json", weights)
    trades = str(REPO_ROOT / "data" / "trades.parquet")
    code, out, err = cli(capsys, "weights", "analyze", "--trades", trades, "--weights", str(weights))
    assert code == 0, err
    assert out.startswith("These are the bundled synthetic trades (made by data/generate_trades.py")
    words = " ".join(out.split())
    assert "Taking more trades raises this figure, so it is not evidence on its own." in words
    assert "A gain at equal volume cannot come from simply trading more." in words
    assert "p-value 0.003: noise alone looked this good in 2 of 1,000 reshuffles of the outcomes" in words
    assert "Fold  Fitted on" not in out  # the folds wait for --details
    code, detailed, _ = cli(capsys, "weights", "analyze", "--trades", trades, "--weights", str(weights), "--details")
    assert "Fold  Fitted on Scored on   Current wins" in detailed
    for text in (out, detailed):
        assert max(len(line) for line in text.splitlines()) <= 100
    copied = tmp_path / "mine.parquet"
    shutil.copyfile(trades, copied)  # the same bytes elsewhere are still the synthetic trades
    assert cli(capsys, "weights", "analyze", "--trades", str(copied), "--weights", str(weights))[1].startswith(
        "These are the bundled synthetic trades"
    )


def test_every_command_a_plugins_too_takes_data_and_store_after_its_name():
    """`… serve --store URL` (as scripts/demo.sh writes it) once failed with "No such option"."""
    from calibration_policy.cli import build_cli

    def leaves(group: click.Group, path: str = ""):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from leaves(command, f"{path}{name} ")
            else:
                yield f"{path}{name}", {flag for p in command.params for flag in getattr(p, "opts", ())}

    found = dict(leaves(build_cli()))
    assert {"serve", "weights list", "replay", "policy log", "demo"} <= set(found)
    missing = {
        name: want
        for name, flags in found.items()
        for want in ("--data", "--store")
        if want not in flags and not (name == "migrate" and want == "--store")
    }
    assert missing == {}


def test_commands_on_a_demo_folder_govern_its_own_live_configs(capsys, tmp_path, monkeypatch):
    """After `demo --out D`, `status SPY --data D` shows D's live values (not the host's own file), and `doctor`
    checks each domain against its own target: the scoring weights' runs are not an underlying "SCORING"."""
    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)  # as in a user's shell: --data alone says where everything is
    out = tmp_path / "demo"
    assert cli(capsys, "demo", "--out", str(out), "--plugins-dir", str(PLUGINS))[0] == 0
    live = json.loads((out / "config" / "vol_surface_SPY.json").read_text())
    host_file = json.loads(SURFACE.read_text())
    code, text, _ = cli(capsys, "status", "SPY", "--data", str(out), "--plugins-dir", str(PLUGINS))
    assert code == 0 and live != host_file
    # since when, in the data's own time (the run that applied it), not the day the demo was run
    assert re.search(rf"Global\s+{live['iv_multiplier']:.4f}\s+2025-1\d-\d\d 21:00 UTC", text), text
    report = json.loads(cli(capsys, "status", "SPY", "--data", str(out), "--plugins-dir", str(PLUGINS), "--json")[1])
    row = report["current"][0]
    assert row["live_since"].startswith("2025-") and not row["last_updated"].startswith("2025-")
    code, text, err = cli(capsys, "doctor", "--data", str(out), "--plugins-dir", str(PLUGINS))
    assert code == 0 and "nothing found" in text and err == "", text + err
    # the demo's changes were made today for runs of 2025: the audit trail and as-of say both, not one
    code, text, _ = cli(capsys, "history", "--changes", "--data", str(out), "--plugins-dir", str(PLUGINS), "--json")
    assert code == 0 and all(c["run_at"].startswith("2025-") for c in json.loads(text) if c["change_id"])
    code, text, _ = cli(capsys, "as-of", "2025-12-01", "--target", "vol_surface_SPY", "--data", str(out))
    assert (
        code == 0
        and "before records began" in text
        and "for calibration runs from 2025-09-11 (a replay or a backfill)" in text
    )


def test_a_missing_host_target_says_how_to_load_the_hosts_plugins():
    from calibration_policy.errors import UnknownPluginError

    message = str(UnknownPluginError("live-config target", "vol_surface", ["scoring_weights"]))
    assert message.startswith("Unknown live-config target 'vol_surface'. Known names: scoring_weights.")
    assert "--plugins-dir DIR" in message
