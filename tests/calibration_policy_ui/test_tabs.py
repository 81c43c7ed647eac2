"""Every tab, the built-in ones too, comes through the panel's tab hook; the weights tab keeps to the data folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from calibration_policy import hookimpl
from calibration_policy.default_plugins.sample import TRADES, WEIGHTS
from calibration_policy.plugins import get_plugin_manager
from calibration_policy_ui import create_router
from calibration_policy_ui.tabs import PanelTab, installed_tabs

from .conftest import USER_HEADER, csrf_of


def test_the_built_in_tabs_are_registered_through_the_hook_in_navigation_order():
    tabs = installed_tabs()
    assert list(tabs)[:3] == ["runs", "scoring_weights", "lab"]
    owners = {impl.plugin_name for impl in get_plugin_manager().hook.register_panel_tabs.get_hookimpls()}
    assert "ui" in owners  # the panel's own entry point, found the way a third party's is


def test_a_plugin_tab_is_placed_by_its_order_and_mounted_beside_the_others(host):
    class Plugin:
        @hookimpl
        def register_panel_tabs(self, register):
            def add_routes(router, context):
                @router.get("/notes/", name="calibration_policy_ui.notes")
                def notes() -> dict:
                    return {"data": str(context.panel.data_dir), "colour": context.options.get("colour")}

            register(PanelTab("notes", "Notes", add_routes, route="notes", order=5))

    pm = get_plugin_manager()
    pm.register(Plugin(), name="notes-tab")
    try:
        assert list(installed_tabs())[:2] == ["runs", "notes"]
        client = TestClient(host.app(tab_options={"notes": {"colour": "teal"}}), base_url="http://agent.test")
        client.headers[USER_HEADER] = "ana"
        assert client.get("/calibration/notes/").json() == {"data": str(host.history_dir.parent), "colour": "teal"}
    finally:
        pm.unregister(name="notes-tab")


def test_create_router_takes_no_weights_only_arguments():
    with pytest.raises(TypeError, match="weights_path"):
        create_router(target_for=lambda underlying: None, weights_path="scoring_weights.json")


def test_the_weights_tab_in_a_host_keeps_to_the_panels_data_folder(host, tmp_path: Path, monkeypatch):
    """A host names its runs folder; the tab reads, suggests and approves there, and the host's own working
    directory gets nothing (no scoring_weights.json looked for there, no lock file left there)."""
    data = host.history_dir.parent
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(WEIGHTS, data / "scoring_weights.json")
    shutil.copyfile(TRADES, data / "trades.parquet")
    cwd = tmp_path / "host-folder"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    client = TestClient(host.app(), base_url="http://agent.test")
    client.headers[USER_HEADER] = "ana"

    live = client.get("/calibration/api/weights").json()
    assert live["file"] == str(data / "scoring_weights.json")
    assert live["current"] == json.loads(WEIGHTS.read_text())
    assert client.get("/calibration/api/weights/evidence").status_code == 200
    html = client.get("/calibration/weights/").text
    client.post("/calibration/weights/suggest", data={"csrf_token": csrf_of(client, html)}, follow_redirects=False)
    html = client.get("/calibration/weights/").text
    suggestion = re.search(r'id="suggestion-([^"]+)"', html).group(1)
    approved = client.post(
        f"/calibration/weights/suggestions/{suggestion}/approve",
        data={"csrf_token": csrf_of(client, html)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    assert json.loads((data / "scoring_weights.json").read_text()) != json.loads(WEIGHTS.read_text())
    assert list(cwd.iterdir()) == []


def test_the_panels_plugin_module_loads_without_fastapi():
    """The core's CLI imports the panel's entry point everywhere; the tabs' FastAPI code loads only with the panel."""
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "from calibration_policy.plugins import get_plugin_manager\n"
        "get_plugin_manager()\n"
        "import calibration_policy_ui.commands\n"
        "assert 'calibration_policy_ui.tabs.scoring_weights' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_panel_loads_pandas_only_when_the_weights_tab_needs_the_trades(tmp_path: Path):
    """pandas and pyarrow are about 70 MB of a server's memory: building the panel and opening its calibration pages
    imports neither (a fresh process); the weights tab, which reads the trades, imports them then."""
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from calibration_policy_ui.app import create_app\n"
        "client = TestClient(create_app(sys.argv[1]))\n"
        "assert client.get('/calibration/').status_code == 200\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
        "from calibration_policy.default_plugins.scoring_weights.analysis import load_trades\n"
        "import calibration_policy.default_plugins.scoring_weights.evidence, calibration_policy.default_plugins.scoring_weights.live\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
        "frame = load_trades(sys.argv[2])\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules), len(frame) > 0)\n"
    )
    trades = Path(__file__).resolve().parents[2] / "src" / "calibration_policy" / "sample_data" / "trades.parquet"
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(trades)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "[]", "['pandas', 'pyarrow'] True"]


def test_a_standalone_app_serves_every_installed_tab(tmp_path: Path):
    from calibration_policy_ui.app import create_app

    client = TestClient(create_app(tmp_path))
    for tab in installed_tabs().values():
        page = client.get(client.app.url_path_for(f"calibration_policy_ui.{tab.route}"))
        assert page.status_code == 200, (tab.name, page.text[:300])


TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "calibration_policy_ui" / "templates"


def test_every_block_the_panel_defines_is_namespaced():
    """A block named like the host's own (``title``, ``header``) would replace the host's: only ``content``,
    which the host's layout provides for us, and names starting ``calibration_``."""
    import jinja2
    from jinja2 import nodes

    env = jinja2.Environment()
    for path in TEMPLATES.rglob("*.html"):
        for block in env.parse(path.read_text(encoding="utf-8")).find_all(nodes.Block):
            assert block.name == "content" or block.name.startswith("calibration_"), (path.name, block.name)


def test_every_tab_page_renders_inside_a_host_whose_title_block_holds_the_title(host, tmp_path: Path):
    from fastapi.templating import Jinja2Templates

    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "layout.html").write_text(
        "<!doctype html><html><head><title>{% block title %}{% block calibration_title %}ACME{% endblock %}"
        "{% endblock %}</title></head><body><nav class='host-nav'>ACME desk</nav>{% block content %}{% endblock %}"
        "</body></html>"
    )
    app = host.app(templates=Jinja2Templates(directory=tmp_path / "host"), base_template="layout.html")
    client = TestClient(app, base_url="http://agent.test")
    client.headers[USER_HEADER] = "ana"
    host.record(global_m=1.08)
    for tab in installed_tabs().values():
        page = client.get(app.url_path_for(f"calibration_policy_ui.{tab.route}")).text
        title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
        assert title != "ACME" and title.strip(), (tab.name, title)
        assert page.index("<nav class='host-nav'>") < page.index("<body>") + 40, tab.name  # nothing above the navbar
