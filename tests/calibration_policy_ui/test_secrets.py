"""A store password set in the policy shows nowhere: not on any page or JSON answer of the panel, not in any
command's output (``--json`` too), not in an error message, not in a log line.

Runs against a real PostgreSQL server whose password is known, with the URL in the policy file as a person
would write it (in the URL, as ``?password=``, or behind ``env:``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import pytest

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.cli import main

from .agent import agent_target
from .conftest import Host
from .test_security import PATH_PARAMS, panel_routes

PASSWORD = "calibration-test"  # tests/pg_server.py's


def as_query_parameter(url: str) -> str:
    """postgresql://user:pw@host/db → postgresql://user@host/db?password=pw (psycopg accepts both)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{PASSWORD}@", "@"), query=f"password={PASSWORD}"))


@pytest.fixture(params=["in the URL", "as ?password=", "behind env:"])
def policy_with_password(request, postgres_url, host: Host, monkeypatch) -> Host:
    """A data folder whose policy file names the store with its password, followed by this process."""
    assert PASSWORD in postgres_url
    setting = {
        "in the URL": postgres_url,
        "as ?password=": as_query_parameter(postgres_url),
        "behind env:": "env:CALIB_TEST_STORE_URL",
    }[request.param]
    monkeypatch.setenv("CALIB_TEST_STORE_URL", postgres_url)
    monkeypatch.setenv("CALIBRATION_DATA", str(host.root))
    monkeypatch.delenv("CALIBRATION_STORE", raising=False)
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    host.root.mkdir(parents=True, exist_ok=True)
    (host.root / "calibration_policy.toml").write_text(f'store = "{setting}"\nrequire_approval = true\n')
    host.policy = CalibrationUpdatePolicy.load(data_dir=host.root)
    host.target_for = lambda underlying: agent_target(host.root, underlying)  # the agent's own config shape
    host.record(global_m=1.08)  # a run and a pending suggestion, in the database
    return host


def test_no_get_route_shows_the_password(policy_with_password: Host, make_client, caplog):
    host = policy_with_password
    client = make_client(policy=lambda: CalibrationUpdatePolicy.load(data_dir=host.root))
    status = client.get("/calibration/api/status", params={"underlying": "SPY"})
    assert status.status_code == 200 and status.json()["policy"]["settings"]["store"]  # the setting is there…
    seen = 0
    with caplog.at_level(logging.DEBUG):
        for route in panel_routes(client.app):
            if "GET" not in route.methods:
                continue
            params = {k: v for k, v in PATH_PARAMS.items() if "{" + k in route.path}
            response = client.get(client.app.url_path_for(route.name, **params), params={"underlying": "SPY"})
            assert response.status_code < 500, (route.path, response.text[:300])
            assert PASSWORD not in response.text, route.path  # …but never its password
            seen += 1
    assert seen >= 10
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "args",
    [
        ["status", "SPY"],
        ["status", "SPY", "--json"],
        ["explain"],
        ["explain", "--json"],
        ["db", "status"],
        ["db", "status", "--json"],
        ["doctor"],
        ["doctor", "--json"],
        ["policy", "log"],
        ["history", "SPY", "--json"],
    ],
)
def test_no_command_prints_the_password(policy_with_password: Host, args, capsys, caplog):
    with caplog.at_level(logging.DEBUG):
        code = main(args)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert out or err
    assert PASSWORD not in out and PASSWORD not in err and PASSWORD not in caplog.text


def test_a_wrong_store_setting_is_refused_without_echoing_its_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path))
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    (tmp_path / "calibration_policy.toml").write_text(
        'store = "host=db.example dbname=calib user=calib password=KeyValue99!"\n'
    )
    assert main(["explain"]) == 2
    err = capsys.readouterr().err
    assert "is not a store URL" in err and "KeyValue99" not in err and "password=***" in err
    assert main(["db", "status", "--store", "postgresql://calib:OnTheLine99@127.0.0.1:1/calib"]) != 0
    err = capsys.readouterr().err
    assert "OnTheLine99" not in err and "127.0.0.1" in err
