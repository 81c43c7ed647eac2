"""The PostgreSQL store's own promises: its schema commands, its migration, and plain errors for bad input."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, StoreError, UpdateOptions, open_store, run_update
from calibration_policy.cli import main
from calibration_policy.default_plugins.postgresql.schema import code_version, migrations, status, upgrade
from calibration_policy.redact import mask as masked
from calibration_policy.stores import active_store, close_all, open_store_url
from calibration_policy.target import JsonFileTarget

from ..test_hints import serving_command

POLICY = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0)


def test_upgrade_is_idempotent_and_safe_from_two_machines_at_once(postgres_server):
    url = postgres_server.new_database()
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(upgrade(url))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(done) for done in results) == [
        0,
        len(migrations()),
    ]  # one applied them, the other found them done
    assert upgrade(url) == [] and status(url)["schema_version"] == code_version()


def test_db_commands(postgres_server, capsys):
    url = postgres_server.new_database()
    assert main(["db", "status", "--store", url]) == 1
    assert "needs `calibration-policy db upgrade`" in capsys.readouterr().out
    assert main(["db", "upgrade", "--store", url]) == 0
    assert "Upgraded" in capsys.readouterr().out
    assert main(["db", "upgrade", "--store", url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "status", "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True


def test_a_store_without_tables_says_to_upgrade(postgres_server, monkeypatch):
    monkeypatch.setenv("CALIBRATION_STORE", postgres_server.new_database())
    with pytest.raises(StoreError, match="db upgrade"):
        open_store().count("SPY")
    close_all()


@pytest.mark.parametrize("named", ["policy file", "policy file env:", "--store", "environment"])
def test_db_commands_work_before_any_table_however_the_store_is_named(
    postgres_server, named, tmp_path, monkeypatch, capsys
):
    url = postgres_server.new_database()
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CALIBRATION_DATA", str(data))
    monkeypatch.delenv("CALIBRATION_STORE", raising=False)
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    extra = []
    if named == "policy file":
        (data / "calibration_policy.toml").write_text(f'store = "{url}"\n')
    elif named == "policy file env:":
        monkeypatch.setenv("CALIB_TEST_DB", url)
        (data / "calibration_policy.toml").write_text('store = "env:CALIB_TEST_DB"\n')
    elif named == "--store":
        extra = ["--store", url]
    else:
        monkeypatch.setenv("CALIBRATION_STORE", url)
    # every other command says to run `db upgrade`, and writes nothing
    assert main(["status", "SPY", *extra]) == 2
    assert "db upgrade" in capsys.readouterr().err
    assert not any(data.iterdir()) or [p.name for p in data.iterdir()] == ["calibration_policy.toml"]
    assert main(["db", "status", *extra]) == 1
    assert "needs `calibration-policy db upgrade`" in capsys.readouterr().out
    assert main(["db", "upgrade", *extra]) == 0
    assert "Upgraded" in capsys.readouterr().out
    assert main(["db", "status", *extra]) == 0
    close_all()


def test_a_newer_schema_is_refused(postgres_url, monkeypatch):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO calibration_schema (version, name) VALUES (%s, 'from_the_future')", (code_version() + 1,)
        )
    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    with pytest.raises(StoreError, match="newer than this calibration-policy"):
        open_store().count("SPY")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:pw@host:notaport/db", "malformed"),
        ("postgresql://u:pw@127.0.0.1:5432", "names no database"),
        ("nonsense", "not a store URL"),
    ],
)
def test_malformed_urls_are_named_without_their_password(url, expected):
    with pytest.raises(StoreError, match=expected) as caught:
        open_store_url(url).runs().count("SPY")
    assert "pw@" not in str(caught.value)


def test_a_server_that_is_down_or_refuses_the_password(postgres_server, tmp_path):
    down = "postgresql://postgres:secret@127.0.0.1:1/db"
    with pytest.raises(StoreError, match="Cannot reach the PostgreSQL server at 127.0.0.1:1") as caught:
        open_store_url(down).runs().count("SPY")
    assert "secret" not in str(caught.value)
    wrong = postgres_server.new_database().replace(":calibration-test@", ":wrong@")
    with pytest.raises(StoreError, match="refused the password of user postgres"):
        open_store_url(wrong).runs().count("SPY")
    close_all()


def test_policy_file_selects_the_store_and_the_panel_never_shows_its_password(postgres_url, tmp_path, monkeypatch):
    from calibration_policy_ui.views import setting_rows

    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "calibration_policy.toml").write_text(f'store = "{postgres_url}"\n')
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    assert active_store().name == "files"
    assert main(["explain"]) == 0  # loads the policy in force, which names the store
    assert active_store().name == "postgresql"
    policy = CalibrationUpdatePolicy(store=postgres_url)
    shown = dict(setting_rows(policy))["Where runs, suggestions and the archive are kept"]
    assert shown == masked(postgres_url) and "calibration-test" not in shown


def test_migrate_there_and_back_is_verified_and_resumable(postgres_url, tmp_path, monkeypatch, make_result, t0, capsys):
    from datetime import timedelta

    source = tmp_path / "data"
    monkeypatch.setenv("CALIBRATION_DATA", str(source))
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    for day in range(5):
        run_update(
            make_result(global_m=1.0 + 0.05 * (day + 1)),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=t0 + timedelta(days=day)),
            context=Context.build(policy=POLICY.model_copy(update={"require_approval": day == 4})),
        )
    from calibration_policy import set_policy

    set_policy(
        CalibrationUpdatePolicy(min_delta_global=0.04),
        reason="calmer",
        context=Context.build(actor="ana", data_dir=source),
    )
    from calibration_policy.outbox import FileOutbox

    events = list(FileOutbox(source).records())
    assert len(events) >= 5  # an event per decision that changed or waited, and the policy set
    sent = events[0] | {"deliveries": {"https://desk.example/hook": {"state": "sent", "attempts": 1, "code": 200}}}
    FileOutbox(source).save(sent)  # one already delivered: it must stay delivered, never be sent again
    assert main(["migrate", "--from", str(source), "--to", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "policy versions: 1 copied" in out and f"events: {len(events)} copied" in out
    assert "runs: 5 copied" in out and "Verified" in out and "calibration-test" not in out
    assert main(["migrate", "--from", str(source), "--to", postgres_url, "--json"]) == 0  # again: nothing copied twice
    again = json.loads(capsys.readouterr().out)
    assert again["verified"] and again["kinds"]["runs"]["copied"] == 0 and again["kinds"]["runs"]["present"] == 5
    assert again["kinds"]["events"]["copied"] == 0 and again["kinds"]["events"]["present"] == len(events)
    back = tmp_path / "back"
    assert main(["migrate", "--from", postgres_url, "--to", str(back)]) == 0
    assert "Verified" in capsys.readouterr().out
    assert sorted(p.name for p in (back / "calibration_runs").glob("*.json")) == sorted(
        p.name for p in (source / "calibration_runs").glob("*.json")
    )
    returned = {r["event"]["event_id"]: r for r in FileOutbox(back).records()}
    assert list(returned) == [r["event"]["event_id"] for r in events]  # every event, in the order they happened
    assert returned[sent["event"]["event_id"]]["deliveries"] == sent["deliveries"]


def test_a_connection_dropped_mid_change_keeps_nothing_and_the_next_change_settles(
    postgres_url, tmp_path, monkeypatch, make_result, t0
):
    import psycopg

    from calibration_policy.default_plugins.postgresql.target import DatabaseTarget
    from calibration_policy.stores import open_archive

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    original_save = DatabaseTarget.save

    def save_then_lose_the_connection(self, snapshot):
        original_save(self, snapshot)
        with self.db.connection() as conn:  # the change's own connection, inside its transaction
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    monkeypatch.setattr(DatabaseTarget, "save", save_then_lose_the_connection)
    with pytest.raises(StoreError, match="nothing of this change was kept") as caught:
        run_update(
            make_result(global_m=1.2),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=t0),
            context=Context.build(policy=POLICY),
        )
    assert "calibration-test" not in str(caught.value)
    governed = active_store().govern(target)
    assert governed.values(governed.load())["global"] == 1.0  # the live row never changed
    assert open_archive(None, "spy_live").entries() == []
    assert json.loads(live.read_text())["global"] == 1.0  # nor this machine's copy
    monkeypatch.setattr(DatabaseTarget, "save", original_save)
    from datetime import timedelta

    after = run_update(
        make_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0 + timedelta(days=1)),
        context=Context.build(policy=POLICY),
    )
    assert after.applied
    first = open_store().oldest("SPY", 1)[0]
    assert first.decided_at is not None and not first.applied  # settled: recorded as not applied, never stuck
    assert active_store().intents.pending_names(None, "spy_live") == []


def test_a_migration_killed_halfway_is_finished_by_running_it_again(
    postgres_url, tmp_path, monkeypatch, record_series, capsys
):
    import os
    import subprocess
    import sys
    import textwrap

    source = tmp_path / "data"
    monkeypatch.setenv("CALIBRATION_DATA", str(source))
    record_series(None, 12)
    child = textwrap.dedent("""
        import os, sys
        from calibration_policy.default_plugins.postgresql.runs import Runs
        from calibration_policy.cli import main
        put, done = Runs.put, []
        def put_then_die(self, run):
            done.append(put(self, run))
            if len(done) == 5:
                os._exit(9)  # killed after five runs were copied
            return done[-1]
        Runs.put = put_then_die
        sys.exit(main(["migrate", "--from", sys.argv[1], "--to", sys.argv[2]]))
    """)
    killed = subprocess.run(
        [sys.executable, "-c", child, str(source), postgres_url], env=dict(os.environ), capture_output=True, text=True
    )
    assert killed.returncode == 9
    assert main(["migrate", "--from", str(source), "--to", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["kinds"]["runs"]["present"] == 5 and report["kinds"]["runs"]["copied"] == 7


def test_the_version_column_refuses_values_changed_and_changed_back(
    postgres_url, tmp_path, monkeypatch, make_result, t0
):
    from calibration_policy import StaleChangeError, force_apply
    from calibration_policy.pipeline import live_version, roll_back

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    seen = live_version(target)  # a page is drawn now
    run_update(
        make_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=POLICY),
    )
    roll_back(
        target, "original", context=Context.build(actor="ana")
    )  # someone else: changed, then changed back to the same values
    assert json.loads(live.read_text())["global"] == 1.0
    with pytest.raises(StaleChangeError, match="changed since you looked"):
        force_apply("SPY", target=target, expected_version=seen, context=Context.build(policy=POLICY))
    assert live_version(target).startswith("3-")  # seeded as 1, two changes since


def test_policy_versions_and_proposals_are_shared_through_the_database(postgres_url, tmp_path, monkeypatch):
    from calibration_policy import propose_policy, review_policy, set_policy
    from calibration_policy.policy_versions import PolicyVersions

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    here, there = tmp_path / "machine_a", tmp_path / "machine_b"  # two data folders: two machines
    set_policy(
        CalibrationUpdatePolicy(min_delta_global=0.05),
        reason="calmer",
        context=Context.build(actor="ana", data_dir=here),
    )
    assert CalibrationUpdatePolicy.load(data_dir=there).min_delta_global == 0.05  # the other machine decides alike
    (version,) = PolicyVersions(there).versions()
    assert version.actor == "ana" and "calibration-test" not in json.dumps(version.policy)  # never the store's password
    proposal = propose_policy(
        CalibrationUpdatePolicy(min_delta_global=0.02),
        reason="faster",
        context=Context.build(actor="bo", data_dir=there),
    )
    review_policy(proposal.proposal_id, approve=True, context=Context.build(actor="ana", data_dir=here))
    assert CalibrationUpdatePolicy.load(data_dir=there).min_delta_global == 0.02
    assert [v.kind for v in PolicyVersions(here).versions()] == ["change", "change"]
    assert not (there / "policy_versions").exists()  # nothing of it in the data folder


def demo_script_commands() -> list[list[str]]:
    """The ``calibration-policy …`` lines of scripts/demo.sh, as written there (so this test follows the script)."""
    script = (Path(__file__).resolve().parents[3] / "scripts" / "demo.sh").read_text()
    return [shlex.split(line.strip()) for line in script.splitlines() if line.strip().startswith("calibration-policy ")]


def test_the_demo_script_and_the_panel_run_on_postgresql(postgres_server, tmp_path):
    """`scripts/demo.sh --store URL`, step by step in fresh processes: tables made, the demo recorded in the
    database (not in files), its history printed, and `serve` shows the panel from the database."""
    url = postgres_server.new_database()
    out = tmp_path / "demo-output"
    binary = Path(sys.executable).with_name("calibration-policy")
    env = {k: v for k, v in os.environ.items() if k != "CALIBRATION_STORE"}
    steps = demo_script_commands()
    assert [s[1] for s in steps] == ["db", "demo", "history", "serve"]

    def argv(step: list[str]) -> list[str]:
        words = [str(out) if w == "demo-output" else w for w in step[1:]]
        return [str(binary), *[w for w in words if w != "${store[@]}"], "--store", url]

    for step in steps[:3]:
        done = subprocess.run(argv(step), capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    assert "SPY" in done.stdout and "Applied" in done.stdout  # the history, read back from the database
    assert not (out / "calibration_runs").exists() and not (out / "config_archive").exists()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM calibration_runs WHERE underlying = 'SPY'").fetchone()[0] == 65

    with serving_command(argv(steps[3]), env=env, page="/calibration/?underlying=SPY") as page:
        text = re.sub(r"<[^>]+>", "", page)
        assert "Latest calibration run: 2025-12-" in text and "65 runs" in text
        assert url not in page  # the store is named without its password, if at all
