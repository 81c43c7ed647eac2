"""The panel inside the options agent's app: its nav, its layout, its plugin, its sign-in."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from calibration_policy.errors import CalibrationPolicyError

from .agent import agent_app_module, fill
from .conftest import Host, text_of


@pytest.fixture
def data(tmp_path: Path) -> Path:
    fill(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def agent(data: Path) -> TestClient:
    return TestClient(agent_app_module().create_app(data, secret="s"))


def test_host_pages_and_the_panel_share_the_hosts_layout(agent: TestClient):
    for url in ("/", "/settings", "/backtests", "/calibration/"):
        html = agent.get(url).text
        assert '/static/host.css"' in html and "Options Agent" in html, url
    panel = agent.get("/calibration/").text
    assert 'class="cp-panel"' in panel
    nav = panel.split('aria-label="Main"')[1].split("</nav>")[0]
    assert nav.index("Settings") < nav.index("Calibration") < nav.index("Backtests")
    assert '/calibration/" aria-current="page">Calibration</a>' in nav
    assert "Signed in as local trader" in panel


def test_panel_reads_the_agents_vol_surface_file(agent: TestClient, data: Path):
    config = json.loads((data / "config" / "vol_surface_SPY.json").read_text())
    html = agent.get("/calibration/").text
    table = html.split('id="cp-current"')[1].split("</table>")[0]
    assert f'data-value="{config["iv_multiplier"]}"' in table
    for band in config["bands"].values():
        assert f'data-value="{band["iv_multiplier"]}"' in table
    assert "Weekly (3–10d)" in text_of(table)


def test_password_protects_every_page_and_the_panel(data: Path):
    app = agent_app_module().create_app(data, password="hunter2", secret="s")
    client = TestClient(app)
    for url in ("/", "/calibration/", "/calibration/api/status?underlying=SPY", "/calibration/static/panel.css"):
        assert client.get(url).status_code == 401, url
    assert client.get("/calibration/", auth=("ana", "hunter2")).status_code == 200
    assert client.get("/calibration/", auth=("ana", "wrong")).status_code == 401


def test_policy_toml_next_to_the_data_is_live(agent: TestClient, data: Path):
    assert "at least 0.03 for the global value" in text_of(agent.get("/calibration/").text)
    (data / "calibration_policy.toml").write_text("min_delta_global = 0.06\n")
    assert "at least 0.06 for the global value" in text_of(agent.get("/calibration/").text)


def test_host_template_overrides_ours_through_the_choice_loader(host: Host, make_client, tmp_path: Path):
    folder = tmp_path / "host_templates" / "calibration_policy_ui"
    folder.mkdir(parents=True)
    (folder / "error.html").write_text(
        "{% extends base_template %}{% block content %}HOST ERROR: {{ message }}{% endblock %}"
    )
    (tmp_path / "host_templates" / "layout.html").write_text(
        "<main class='host'>{% block content %}{% endblock %}</main>"
    )
    client = make_client(templates=str(tmp_path / "host_templates"), base_template="layout.html")
    host.record()
    assert "<main class='host'>" in client.get("/calibration/").text
    assert "HOST ERROR: There are no calibration runs for QQQ" in client.get("/calibration/?underlying=QQQ").text


def test_host_jinja_globals_are_available_to_its_layout(host: Host, make_client):
    from fastapi.templating import Jinja2Templates
    from jinja2 import DictLoader

    templates = Jinja2Templates(
        env=__import__("jinja2").Environment(
            loader=DictLoader({"layout.html": "{{ company }}|{% block content %}{% endblock %}"})
        )
    )
    templates.env.globals["company"] = "ACME Options"
    assert (
        make_client(templates=templates, base_template="layout.html")
        .get("/calibration/")
        .text.startswith("ACME Options|")
    )


def test_entry_point_plugin_builds_the_router(host: Host):
    [ep] = [ep for ep in entry_points(group="calibration_policy_ui") if ep.name == "calibration"]
    plugin = ep.load()
    assert (plugin.title, plugin.prefix) == ("Calibration", "/calibration")
    router = plugin(target_for=host.target_for, history_dir=host.history_dir)
    assert isinstance(router, APIRouter)
    app = FastAPI()
    app.include_router(router, prefix=plugin.prefix)
    assert TestClient(app).get("/calibration/").status_code == 200


def test_create_router_needs_a_target_function():
    from calibration_policy_ui import create_router

    with pytest.raises(TypeError, match="target_for must be a function"):
        create_router(target_for=None)  # type: ignore[arg-type]


def test_serve_command_parses_and_explains_problems(tmp_path: Path, monkeypatch):
    import click

    from calibration_policy.cli import main
    from calibration_policy_ui import commands

    group = click.Group()
    commands.register_commands(cli=group)
    serve = group.commands["serve"]
    args = serve.make_context("serve", ["--data", str(tmp_path / "missing"), "--port", "8123"])
    assert (args.params["host"], args.params["port"]) == ("127.0.0.1", 8123)
    with pytest.raises(CalibrationPolicyError, match="does not exist; run `calibration-policy demo"):
        serve.invoke(args)
    with pytest.raises(SystemExit):
        serve.main(["--port", "99999"], prog_name="serve")
    with pytest.raises(CalibrationPolicyError, match="Cannot find the host's app"):
        commands.load_app_factory(tmp_path / "nope.py")
    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, log_level: served.update(app=app, host=host, port=port))
    (tmp_path / "data").mkdir()
    assert (
        main(
            [
                "serve",
                "--data",
                str(tmp_path / "data"),
                "--app",
                str(Path(commands.__file__).parents[2] / "examples/options_agent/app.py"),
            ]
        )
        == 0
    )
    assert isinstance(served["app"], FastAPI) and served["port"] == 8000


def test_a_second_panel_in_the_process_compiles_no_template_and_an_override_is_its_own(
    host: Host, make_client, tmp_path: Path, monkeypatch
):
    """Templates compile once per process, not once per app (each test, a reload, several panels); a host's
    override of the same name, or a template edited since, is compiled and shown as its own."""
    import jinja2

    host.record()
    assert make_client().get("/calibration/").status_code == 200
    compiled: list[str | None] = []
    original = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        compiled.append(name)
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    page = make_client().get("/calibration/")
    assert page.status_code == 200 and "Calibration" in page.text and compiled == []
    folder = tmp_path / "host_templates"
    folder.mkdir()
    (folder / "layout.html").write_text("<main class='one'>{% block content %}{% endblock %}</main>")
    assert (
        "<main class='one'>"
        in make_client(templates=str(folder), base_template="layout.html").get("/calibration/").text
    )
    assert compiled == ["layout.html"]
    (folder / "layout.html").write_text("<main class='two'>{% block content %}{% endblock %}</main>")
    assert (
        "<main class='two'>"
        in make_client(templates=str(folder), base_template="layout.html").get("/calibration/").text
    )
    assert compiled == ["layout.html", "layout.html"]
