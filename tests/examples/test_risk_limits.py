"""The risk-limits example: a third domain, installed as its own package, with no change to the core.

``examples/risk_limits`` is installed the way pip installs it — the package copied into a
site-packages folder beside a dist-info whose ``entry_points.txt`` comes from the example's own
``pyproject.toml`` — and then driven only through the core's public entry points: ``run_update``,
``explain``, ``status_report``, the history, ``rollback``, ``installed_plugins``, the CLI and the
panel's ``create_router``. Every number below follows from the bundled, seeded returns.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
import textwrap
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    InvalidRunError,
    PolicyError,
    UpdateOptions,
    load_recent_calibration_history,
    plugins,
    run_update,
    should_apply_update,
)
from calibration_policy import cli as core_cli
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.status import status_report

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "risk_limits"
PACKAGE = "cp_risk_limits"
BOOK = "FIRM"
SOURCE = "realized-vol"
START = {"rates": 50_000_000, "equities": 30_000_000, "fx": 22_000_000}  # the live limits before any update
JUNE = {"rates": 54_400_000.0, "equities": 33_300_000.0, "fx": 26_000_000.0}  # calibrated on 2025-06-30
POLICY_TOML = """\
domain = "risk_limits"
rules = ["min_sample_size", "bounds", "max_cut_pct", "min_delta"]
min_sample_size = 40
min_delta_global = 500000.0
smoothing_window_days = 5.0

[rule_options.max_cut_pct]
max_cut_pct = 25
"""


# -- installing the example like pip would -----------------------------------------------------------


def install(site: Path) -> dict[str, Any]:
    """Copy the package into ``site`` and write its dist-info from the example's pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    shutil.copytree(EXAMPLE / PACKAGE, site / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", encoding="utf-8"
    )
    groups = project["entry-points"]
    (dist / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items()) + "\n"
            for group, points in groups.items()
        ),
        encoding="utf-8",
    )
    (dist / "RECORD").write_text("", encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """The example installed for this module's tests; the plugin manager rebuilt before and after."""
    site = tmp_path_factory.mktemp("site-packages")
    project = install(site)
    sys.path.insert(0, str(site))
    plugins.reset_plugin_manager()
    try:
        yield {**project, "site": site}
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        plugins.reset_plugin_manager()


@pytest.fixture
def rl(installed):
    """The installed package, imported as a host would."""
    import cp_risk_limits

    return cp_risk_limits


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


class Desk:
    """A data folder: the live limits file, the runs, the archive and a policy TOML."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.limits = root / "risk_limits.json"
        self.limits.write_text(json.dumps(START), encoding="utf-8")
        self.history_dir, self.archive_dir = root / "runs", root / "archive"
        self.policy_file = root / "limits.toml"
        self.policy_file.write_text(POLICY_TOML, encoding="utf-8")

    def policy(self) -> CalibrationUpdatePolicy:
        return CalibrationUpdatePolicy.from_toml(self.policy_file)

    def target(self):
        from cp_risk_limits import limits_target

        return limits_target(BOOK, self.limits)

    def live(self) -> dict[str, float]:
        return json.loads(self.limits.read_text(encoding="utf-8"))

    def update(self, day: date, policy: CalibrationUpdatePolicy | None = None):
        result = plugins.get_source(SOURCE).calibrate(BOOK, day)
        return run_update(
            result,
            underlying=BOOK,
            source=SOURCE,
            target=self.target(),
            options=UpdateOptions(timestamp=datetime(day.year, day.month, day.day, 21, tzinfo=UTC)),
            context=Context.build(
                policy=policy or self.policy(), history_dir=self.history_dir, archive_dir=self.archive_dir
            ),
        )


# -- what is installed --------------------------------------------------------------------------------


def test_the_entry_point_comes_from_the_examples_pyproject(installed):
    assert installed["name"] == "cp-risk-limits"
    assert installed["entry-points"]["calibration_policy"] == {"risk_limits": "cp_risk_limits"}


def test_installed_plugins_lists_it_with_its_package_and_names(installed):
    listed = {info.name: info for info in plugins.installed_plugins()}
    mine = listed["risk_limits"]
    assert mine.package == "cp-risk-limits 0.1.0"
    core_kinds = {kind: names for kind, names in mine.registers.items() if kind != "panel_tabs"}
    assert core_kinds == {
        "domains": ("risk_limits",),
        "sources": (SOURCE,),
        "targets": ("risk_limits",),
        "rules": ("max_cut_pct",),
    }
    # Panel tabs are listed once a panel was built in this process (the panel adds that kind when it loads).
    assert mine.registers.get("panel_tabs", ("risk_limits",)) == ("risk_limits",)
    assert {
        "register_domains",
        "register_sources",
        "register_targets",
        "register_rules",
        "register_commands",
        "register_panel_tabs",
    } <= set(mine.hooks)


def test_the_plugin_imports_only_public_names_of_the_core(installed):
    """Written against the public API only: what a host calls (``calibration_policy``), the plugin authors'
    module (``calibration_policy.plugin``) and the panel's tab hook; no private module."""
    import calibration_policy.plugin

    public = {
        "calibration_policy": set(calibration_policy.__all__),
        "calibration_policy.plugin": set(calibration_policy.plugin.__all__),
        "calibration_policy_ui.tabs": {"PanelTab", "TabContext"},
    }
    used = set()
    for path in (EXAMPLE / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and node.module.split(".")[0].startswith("calibration_policy")
            ):
                used |= {(node.module, alias.name) for alias in node.names}
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("calibration_policy") for a in node.names), path
    outside = sorted(f"{module}.{name}" for module, name in used if name not in public.get(module, set()))
    assert outside == []


# -- the source ---------------------------------------------------------------------------------------


def expected_limit(desk_name: str, day: date, budget: float, window: int = 60) -> float:
    """The limit worked out here, from the bundled CSV, independently of the plugin's code."""
    with (EXAMPLE / PACKAGE / "data" / "daily_returns.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if date.fromisoformat(row["date"]) <= day][-window:]
    vol = statistics.stdev(float(row[desk_name]) for row in rows) * math.sqrt(252)
    return math.floor(budget / vol / 100_000) * 100_000


def test_the_source_sizes_each_limit_from_its_realized_volatility(installed):
    source = plugins.get_source(SOURCE)
    result = source.calibrate(BOOK, date(2025, 6, 30))
    assert result == source.calibrate(BOOK, date(2025, 6, 30))  # deterministic
    assert result["n_days"] == 60 and result["first_day"] == "2025-04-08"
    budgets = {"rates": 3_000_000, "equities": 5_000_000, "fx": 2_000_000}
    for name, budget in budgets.items():
        assert (
            result["desks"][name]["recommended_limit"] == expected_limit(name, date(2025, 6, 30), budget) == JUNE[name]
        )
    spike = source.calibrate(BOOK, date(2025, 12, 31))["desks"]["equities"]
    assert spike["realized_vol"] == pytest.approx(0.3986, abs=1e-4) and spike["recommended_limit"] == 12_500_000
    assert source.underlyings() == [BOOK]
    assert source.dates(BOOK)[0] == date(2025, 3, 26)  # the first day with 60 days of returns behind it


@pytest.mark.parametrize(
    "book, day, message",
    [
        ("DESK2", None, "holds returns for the FIRM book only, not 'DESK2'"),
        (BOOK, date(2026, 1, 5), "The returns end on 2025-12-31; there is nothing to calibrate on 2026-01-05."),
        (
            BOOK,
            date(2025, 1, 2),
            "Only 1 day of returns up to 2025-01-02 (they start on 2025-01-02); volatility needs at least 2.",
        ),
    ],
)
def test_the_source_refuses_what_it_cannot_calibrate(installed, book, day, message):
    with pytest.raises(InvalidRunError) as info:
        plugins.get_source(SOURCE).calibrate(book, day)
    assert message in str(info.value)


# -- the domain ---------------------------------------------------------------------------------------


def test_the_domain_refuses_a_limit_that_is_not_positive(rl, desk):
    domain = plugins.get_domain("risk_limits")
    with pytest.raises(InvalidRunError, match=r"^The FX position limit must be positive, not -5e\+06\.$"):
        domain.validate({"rates": 1e6, "fx": -5e6})
    with pytest.raises(InvalidRunError, match="The Equities desk's realized volatility is 0; it must be positive"):
        domain.extract({"n_days": 60, "desks": {"equities": {"realized_vol": 0.0, "recommended_limit": 1e6}}})
    with pytest.raises(InvalidRunError, match="has no desks table"):
        domain.extract({"n_days": 60})
    before = desk.limits.read_bytes()
    with pytest.raises(InvalidRunError, match="The Rates position limit must be positive, not 0"):
        desk.target().with_values(desk.target().load(), {"rates": 0})
    assert desk.limits.read_bytes() == before


def test_a_run_from_another_source_is_refused_naming_the_domains_source(rl, desk):
    with pytest.raises(
        InvalidRunError, match="'harvested' is not a source of Desk position limits; use one of: realized-vol."
    ):
        run_update(
            plugins.get_source(SOURCE).calibrate(BOOK, date(2025, 6, 30)),
            underlying=BOOK,
            source="harvested",
            target=desk.target(),
            context=Context.build(policy=desk.policy(), history_dir=desk.history_dir, archive_dir=desk.archive_dir),
        )


# -- update, the rule's options, explain ------------------------------------------------------------------


def test_update_not_applied_with_the_reason_then_applied(rl, desk):
    before = desk.limits.read_bytes()
    thin = desk.update(date(2025, 2, 14))
    assert not thin.applied
    assert thin.decision.reason == "Not applied: too few trading days in the sample (32, minimum 40)"
    assert desk.limits.read_bytes() == before  # not even rewritten
    applied = desk.update(date(2025, 6, 30))
    assert applied.applied and applied.change.kind == "update"
    assert desk.live() == JUNE
    assert applied.decision.reason.startswith(
        "Applied: Rates 50,000,000.00 → 54,400,000.00 (change 4,400,000.00, threshold 500,000.00); "
        "Equities 30,000,000.00 → 33,300,000.00 (change 3,300,000.00, threshold 500,000.00); "
    )
    assert "60 trading days (minimum 40)" in applied.decision.reason
    assert applied.summary() == f"FIRM 2025-06-30 21:00 UTC (realized-vol): {applied.decision.reason}"


def test_the_rules_options_from_the_policy_toml_clip_a_cut(rl, desk):
    desk.limits.write_text(json.dumps(JUNE), encoding="utf-8")
    outcome = desk.update(date(2025, 12, 31))  # the equities volatility spike: 12,500,000 recommended
    assert outcome.applied
    assert desk.live() == {"rates": 43_800_000.0, "equities": 24_975_000.0, "fx": 19_500_000.0}
    (verdict,) = [v for v in outcome.decision.verdicts if v.code == "max_cut_pct"]
    assert verdict.numbers == {
        "max_cut_pct": 25.0,
        "cuts_pct": {
            "rates": pytest.approx(19.4853, abs=1e-4),
            "equities": 62.4625,
            "fx": pytest.approx(33.8462, abs=1e-4),
        },
    }
    assert verdict.text == (
        "Equities limit cut to 24,975,000, 25% below 33,300,000 (the calibration asks for 12,500,000, a 62.5% cut; "
        "at most 25% per update); FX limit cut to 19,500,000, 25% below 26,000,000 (the calibration asks for "
        "17,200,000, a 33.8% cut; at most 25% per update)"
    )
    assert verdict.text in outcome.decision.reason  # the reason on record says it, with the numbers


def test_the_rule_defaults_to_20_percent_and_never_slows_a_raise(rl):
    policy = CalibrationUpdatePolicy(domain="risk_limits", rules=("max_cut_pct",))
    cut = should_apply_update({"rates": 100e6, "fx": 10e6}, {"rates": 50e6, "fx": 9e6}, policy)
    assert cut.values == {"rates": 80e6, "fx": 9e6}
    assert cut.verdicts[0].text.startswith("Rates limit cut to 80,000,000, 20% below 100,000,000 (")
    raised = should_apply_update({"rates": 100e6}, {"rates": 250e6}, policy)
    assert raised.values == {"rates": 250e6}
    assert raised.verdicts[0].text == "every cut within 20% of the live limit"


@pytest.mark.parametrize(
    "options, message",
    [
        ("max_cut_pct = -5", "rule_options for max_cut_pct: max_cut_pct must be greater than 0 (got -5)"),
        ("max_cut_pct = 150", "rule_options for max_cut_pct: max_cut_pct must be less than or equal to 100 (got 150)"),
        ('max_cut_pct = "20"', "rule_options for max_cut_pct: max_cut_pct must be a valid number (got '20')"),
        (
            "max_cut = 20",
            "rule_options for max_cut_pct: max_cut is not an option of the rule “Gradual cuts” (check the spelling; "
            "its options: max_cut_pct)",
        ),
    ],
)
def test_bad_rule_options_fail_when_the_policy_loads_naming_the_field(rl, tmp_path, options, message):
    path = tmp_path / "limits.toml"
    path.write_text(POLICY_TOML.replace("max_cut_pct = 25", options), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy.from_toml(path)
    assert str(info.value).startswith(f"{path}: Invalid calibration policy: ")
    assert message in str(info.value)


def test_explain_speaks_of_position_limits_and_trading_days(rl, desk):
    text = desk.policy().explain()
    assert (
        "only updates position limits when the change is large enough (at least 500,000.00 for any position limit)"
        in text
    )
    assert "at least 40 trading days in the sample" in text
    assert "A value outside 100,000.00–10,000,000,000.00 is never applied." in text  # the domain's safety range
    assert "vega" not in text and "IV" not in text
    assert text.endswith("(max cut pct 25).")  # the plugin's rule explains itself, with the TOML's option
    assert rl.limits_policy().explain() == text.replace(
        "(max cut pct 25).", "(max cut pct 20)."
    )  # the packaged default


# -- status, history, rollback ------------------------------------------------------------------------


def test_status_history_and_rollback_to_the_original_limits(rl, desk):
    desk.update(date(2025, 2, 14))
    first = desk.update(date(2025, 6, 30))
    second = desk.update(date(2025, 12, 31))
    policy = desk.policy()

    report = status_report(
        BOOK, policy=policy, target=desk.target(), history_dir=desk.history_dir, archive_dir=desk.archive_dir
    )
    assert report.title == "Desk position limits"
    assert [(row.label, row.value) for row in report.current] == [
        ("Equities", 24_975_000.0),
        ("FX", 19_500_000.0),
        ("Rates", 43_800_000.0),
    ]
    assert all(row.last_updated == second.change.at for row in report.current)
    assert report.latest.run_id == second.run.run_id and report.last_change.change_id == second.change.change_id
    assert report.explanation == policy.explain()

    runs = load_recent_calibration_history(BOOK, history_dir=desk.history_dir)
    assert [(run.timestamp.date(), run.status, run.domain) for run in runs] == [
        (date(2025, 2, 14), "not applied", "risk_limits"),
        (date(2025, 6, 30), "applied", "risk_limits"),
        (date(2025, 12, 31), "applied", "risk_limits"),
    ]
    assert runs[0].sample_size == 32 and runs[-1].applied_values == desk.live()
    assert runs[-1].model_extra["desks"]["equities"]["realized_vol"] == pytest.approx(0.3986, abs=1e-4)

    back = rollback(desk.target(), "original", context=Context.build(archive_dir=desk.archive_dir, actor="ana"))
    assert desk.live() == START
    assert back.kind == "rollback" and back.reason == "Applied: rolled back to the original position limits by ana"
    again = rollback(
        desk.target(), first.change.change_id, context=Context.build(archive_dir=desk.archive_dir, actor="ana")
    )
    assert desk.live() == JUNE
    assert again.reason == f"Applied: rolled back to the position limits of {first.change.at:%Y-%m-%d %H:%M UTC} by ana"
    after = status_report(
        BOOK, policy=policy, target=desk.target(), history_dir=desk.history_dir, archive_dir=desk.archive_dir
    )
    assert after.last_change.kind == "rollback" and [r.value for r in after.current] == [
        33_300_000.0,
        26_000_000.0,
        54_400_000.0,
    ]


# -- the command --------------------------------------------------------------------------------------


def test_the_command_on_a_click_group(rl, desk):
    group = click.Group("calibration-policy")
    rl.register_commands(group)  # the hookimpl itself, given a click group as the click CLI passes it
    assert "risk-limits" in group.commands
    runner = CliRunner()
    shown = runner.invoke(group, ["risk-limits", "show", "--config", str(desk.limits)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"Live position limits in {desk.limits}:",
        "  Equities       30,000,000",
        "  FX             22,000,000",
        "  Rates          50,000,000",
    ]
    as_json = runner.invoke(group, ["risk-limits", "show", "--config", str(desk.limits), "--json"])
    assert json.loads(as_json.output) == {"path": str(desk.limits), "limits": {k: float(v) for k, v in START.items()}}
    missing = runner.invoke(group, ["risk-limits", "show", "--config", str(desk.root / "nope.json")])
    assert missing.exit_code == 2
    assert f"The live config {desk.root / 'nope.json'} does not exist" in missing.output
    assert "Traceback" not in missing.output


def test_the_core_cli_runs_the_command_and_the_update(rl, desk, capsys):
    """Through ``calibration_policy.cli.main``, as a user types it — on the argparse CLI and the click one."""
    paths = [
        "--policy",
        str(desk.policy_file),
        "--history-dir",
        str(desk.history_dir),
        "--archive-dir",
        str(desk.archive_dir),
    ]
    assert (
        core_cli.main(
            [
                "update",
                "--underlying",
                BOOK,
                "--source",
                SOURCE,
                "--date",
                "2025-06-30",
                "--config",
                str(desk.limits),
                "--json",
                *paths,
            ]
        )
        == 0
    )
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["applied"] and outcome["applied_values"] == JUNE
    assert core_cli.main(["risk-limits", "show", "--config", str(desk.limits), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["limits"] == JUNE
    assert core_cli.main(["status", BOOK, "--config", str(desk.limits), *paths]) == 0
    status = capsys.readouterr().out
    assert "Current Desk position limits for FIRM:" in status and "Equities" in status
    assert core_cli.main(["risk-limits", "show", "--config", str(desk.root / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_click_cli_lists_the_command_as_the_plugins(rl, capsys):
    assert core_cli.main(["plugins", "--json"]) == 0
    listed = {plugin["name"]: plugin for plugin in json.loads(capsys.readouterr().out)}
    assert listed["risk_limits"]["registers"]["commands"] == ["risk-limits"]
    assert core_cli.main(["risk-limits", "--help"]) == 0
    assert "show" in capsys.readouterr().out


# -- the panel tab ------------------------------------------------------------------------------------


def client(desk: Desk, policy: CalibrationUpdatePolicy, **options: Any):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from calibration_policy_ui import create_router

    app = FastAPI()
    app.include_router(
        create_router(
            target_for=lambda underlying: desk.target(),
            history_dir=desk.history_dir,
            archive_dir=desk.archive_dir,
            policy=policy,
            secret="test-secret",
            **options,
        ),
        prefix="/calibration",
    )
    return TestClient(app)


def test_the_tab_shows_the_live_limits_and_the_latest_runs(rl, desk):
    pytest.importorskip("fastapi")
    desk.update(date(2025, 2, 14))
    desk.update(date(2025, 6, 30))
    web = client(desk, desk.policy())
    page = web.get("/calibration/risk-limits/")
    assert page.status_code == 200
    html = page.text
    assert '<a href="/calibration/risk-limits/" aria-current="page"><strong>Risk limits</strong></a>' in html
    assert '<a href="/calibration/">Desk position limits</a>' in html  # the runs tab, named after the domain
    for label, shown in (("Equities", "33,300,000"), ("FX", "26,000,000"), ("Rates", "54,400,000")):
        assert f'<th scope="row">{label}</th><td class="cp-num" data-value="{JUNE[label.lower()]}">{shown}</td>' in html
    assert "Not applied: too few trading days in the sample (32, minimum 40)" in html
    assert "Applied: Rates 50,000,000.00 → 54,400,000.00" in html
    assert "at least 40 trading days in the sample" in html  # the policy, explained
    assert "/calibration/static/panel.css" in html  # the panel's own look, in the panel's base layout
    runs_tab = web.get("/calibration/")
    assert runs_tab.status_code == 200 and '<a href="/calibration/risk-limits/">Risk limits</a>' in runs_tab.text


def test_the_tab_says_when_the_live_file_is_missing_and_takes_tab_options(rl, desk):
    pytest.importorskip("fastapi")
    desk.limits.unlink()
    missing = client(desk, desk.policy()).get("/calibration/risk-limits/")
    assert missing.status_code == 200
    assert f"The live config {desk.limits} does not exist" in missing.text
    other = desk.root / "other_limits.json"
    other.write_text(json.dumps({"rates": 1_250_000}), encoding="utf-8")
    # A panel that governs another domain still shows the tab, on the file its options name.
    page = client(desk, CalibrationUpdatePolicy(), tab_options={"risk_limits": {"limits_path": other}}).get(
        "/calibration/risk-limits/"
    )
    assert page.status_code == 200 and ">1,250,000</td>" in page.text
    assert "at least 40 trading days in the sample" in page.text  # the plugin's starting policy, not the vol surface's


def test_the_plugin_loads_where_the_panel_and_click_are_not_installed(installed, tmp_path):
    """No FastAPI, Starlette, Jinja or click: the domain, source, target, rule and an update still work."""
    site = str(installed["site"])
    script = textwrap.dedent(f"""
        import json, sys
        from datetime import date
        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("fastapi", "starlette", "jinja2", "click"):
                    raise ImportError(f"No module named {{name!r}} (not installed here)")
        sys.meta_path.insert(0, Missing())
        sys.path.insert(0, {site!r})
        from calibration_policy import Context, run_update
        from calibration_policy.plugins import get_source, installed_plugins
        from cp_risk_limits import limits_policy, limits_target
        listed = {{p.name: p.registers for p in installed_plugins()}}
        assert listed["risk_limits"]["domains"] == ("risk_limits",), listed
        path = {str(tmp_path / "limits.json")!r}
        open(path, "w").write(json.dumps({json.dumps(START)}))
        outcome = run_update(get_source("realized-vol").calibrate("FIRM", date(2025, 6, 30)), underlying="FIRM",
                             source="realized-vol", target=limits_target(path=path),
                             context=Context.build(policy=limits_policy(), history_dir={str(tmp_path / "runs")!r},
                                                   archive_dir={str(tmp_path / "archive")!r}))
        assert outcome.applied, outcome.decision.reason
        assert not any(m.split(".")[0] in ("fastapi", "jinja2", "click") for m in sys.modules)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
