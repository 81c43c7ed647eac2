"""Values that must sum to 1 are shown so that they do (issue 24, item 9): a domain that says so
(``Domain.sums_to_one``) has every value set it shows rounded as a whole — the panel's live table, latest run,
suggestions, changes and force-apply page, the weights tab, the CLI's history, status, review and weights
commands. The shares below add up to exactly 1, yet rounded one by one they read 1.01 at two decimals, 1.001 at
three and 1.0001 at four."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy import plugins as plugins_module
from calibration_policy.cli import main
from calibration_policy.plugin import Domain, Extracted, JsonFileTarget, TargetFactory, hookimpl
from calibration_policy.plugins import get_plugin_manager
from calibration_policy_ui.app import create_app

from .conftest import T0, text_of
from .test_weights import Tab

SHARES = {"alpha": 0.24666, "beta": 0.24666, "gamma": 0.24666, "delta": 0.26002}
WEIGHTS = {"wallet": 0.24666, "cluster": 0.24666, "token": 0.24666, "context": 0.26002}
EVEN = {"alpha": 0.25, "beta": 0.25, "gamma": 0.25, "delta": 0.25}


class Allocation(Domain):
    name = "allocation"
    title = "Desk allocation"
    parameter_label = "share"
    parameter_label_plural = "shares"
    sample_unit = "trades"
    sources = ("book",)
    sums_to_one = True

    def extract(self, result):
        return Extracted(recommended=dict(result["shares"]), sample_size=int(result["trades"]), vega_sum=1.0)


class AllocationPlugin:
    @hookimpl
    def register_domains(self, register):
        register(Allocation())

    @hookimpl
    def register_targets(self, register):
        register(
            TargetFactory("allocation", lambda underlying, path=None: JsonFileTarget(path, name=f"alloc_{underlying}"))
        )


def update(root: Path, underlying: str, policy: CalibrationUpdatePolicy) -> None:
    """One run of SHARES through the policy (the one call of the change API in this file)."""
    from calibration_policy import Context, UpdateOptions
    from calibration_policy.pipeline import run_update

    run_update(
        {"shares": SHARES, "trades": 900},
        underlying=underlying,
        source="book",
        target=JsonFileTarget(root / "config" / f"allocation_{underlying}.json", name=f"alloc_{underlying}"),
        context=Context.build(policy=policy, data_dir=root),
        options=UpdateOptions(timestamp=T0),
    )


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """DESK applied SHARES (live now, one change); BOOK's run of SHARES waits for approval."""
    for folder in ("HISTORY", "ARCHIVE", "SUGGESTIONS"):  # the commands' --data decides, as for a user
        monkeypatch.delenv(f"CALIBRATION_{folder}_DIR")
    plugins_module.reset_plugin_manager()
    get_plugin_manager().register(AllocationPlugin(), name="allocation")
    root = tmp_path / "data"
    (root / "config").mkdir(parents=True)
    for underlying in ("DESK", "BOOK"):
        (root / "config" / f"allocation_{underlying}.json").write_text(json.dumps(EVEN))
    policy = CalibrationUpdatePolicy(
        domain="allocation", min_sample_size=1, min_vega_sum=0, min_delta_global=0.001, require_approval=True
    )
    (root / "calibration_policy.toml").write_text(
        'domain = "allocation"\nmin_sample_size = 1\nmin_vega_sum = 0\nmin_delta_global = 0.001\nrequire_approval = true\n'
    )
    update(root, "DESK", policy.model_copy(update={"require_approval": False}))
    update(root, "BOOK", policy)
    yield root
    plugins_module.reset_plugin_manager()


def columns(html: str, element_id: str, width: int) -> list[list[str]]:
    """The figures shown inside the element ``element_id`` (each value the panel prints carries its raw value in
    ``data-value``), split into the table's ``width`` columns."""
    part = html.split(f'id="{element_id}"', 1)[1].split("</section>", 1)[0]
    shown = re.findall(r'<span data-value="[^"]+">([^<]+)</span>', part)
    return [shown[i::width] for i in range(width)]


def adds_up_to_one(figures: list[str]) -> bool:
    return len(figures) == 4 and sum(Decimal(figure) for figure in figures) == 1


def test_the_panel_shows_every_set_of_shares_adding_up_to_one(data: Path):
    client = TestClient(create_app(data))
    desk = client.get("/calibration/", params={"underlying": "DESK"}).text
    (live,) = columns(desk, "cp-now", 1)
    assert live == ["0.247", "0.247", "0.260", "0.246"]  # alpha, beta, delta, gamma: one by one 1.001
    recommended, smoothed, live_now = columns(desk.split('id="cp-run"', 1)[1], "cp-run-title", 3)
    assert all(adds_up_to_one(c) for c in (recommended, smoothed, live_now)), (recommended, smoothed, live_now)
    # the latest-run line reads the figure its table shows
    assert "This run recommended Alpha 0.247, smoothed to 0.247 (live: 0.247)" in text_of(desk)
    changes = desk.split('id="cp-changes"', 1)[1].split("</section>", 1)[0]
    after = re.findall(r'<strong><span data-value="[^"]+">([^<]+)</span></strong>', changes)
    assert adds_up_to_one(after), after
    confirm = client.get("/calibration/force-apply", params={"underlying": "DESK"}).text
    part = confirm.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    shown = re.findall(r'<span data-value="[^"]+">([^<]+)</span>', part)
    assert all(adds_up_to_one(shown[i::3]) for i in range(3)), shown

    book = client.get("/calibration/", params={"underlying": "BOOK"}).text
    live_column, suggested = columns(book, "cp-review", 2)
    assert live_column == ["0.250"] * 4 and adds_up_to_one(suggested), suggested


def test_the_cli_shows_every_set_of_shares_adding_up_to_one(data: Path, capsys):
    assert main(["status", "DESK", "--data", str(data)]) == 0
    status = capsys.readouterr().out
    figures = re.findall(r"\b0\.\d{4}\b", status)
    assert len(figures) == 4 and sum(Decimal(f) for f in figures) == 1, status  # one by one: 1.0001
    assert main(["history", "DESK", "--data", str(data)]) == 0
    history = re.findall(r"(alph|beta|delt|gamm) (\d\.\d\d)", capsys.readouterr().out)
    recommended = [figure for _, figure in history[0::2]]  # a row per scope: recommended, then smoothed
    assert recommended == ["0.25", "0.25", "0.26", "0.24"]  # one by one: 0.25 + 0.25 + 0.26 + 0.25
    assert main(["review", "list", "--data", str(data)]) == 0
    listed = capsys.readouterr().out
    assert main(["review", "show", "--data", str(data), re.search(r"\S+_alloc_BOOK", listed).group(0)]) == 0
    shown = capsys.readouterr().out
    # the suggested values, not the reason (which also begins "Suggested:")
    suggested = re.search(r"^Suggested: (Alpha \d\.\d{4},.*)$", shown, re.MULTILINE).group(1)
    assert sum(Decimal(f) for f in re.findall(r"\d\.\d{4}", suggested)) == 1, suggested


def test_the_weights_tab_and_the_weights_commands_show_weights_adding_up_to_one(tmp_path: Path, capsys):
    tab = Tab(tmp_path / "data")
    tab.weights.write_text(json.dumps(WEIGHTS))
    html = tab.client().get("/calibration/weights/").text
    part = html.split('id="cp-w-current"', 1)[1].split("</table>", 1)[0]
    live = re.findall(r'<span data-value="[^"]+">([^<]+)</span>', part)
    assert live == ["0.2467", "0.2467", "0.2466", "0.2600"]  # one by one: 1.0001
    analysis = html.split('id="cp-w-analysis"', 1)[1].split("</table>", 1)[0]
    shown = re.findall(r'<span data-value="[^"]+">([^<]+)</span>', analysis)
    assert adds_up_to_one(shown[0::2]) and adds_up_to_one(shown[1::2]), shown  # live, would suggest
    assert main(["weights", "show", "--weights", str(tab.weights), "--data", str(tab.root)]) == 0
    said = capsys.readouterr().out
    assert "wallet 0.2467, cluster 0.2467, token 0.2466, context 0.2600" in said
