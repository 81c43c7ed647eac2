"""The outbox and its delivery, on both stores: every decision and change reaches a real HTTP receiver,
signed (verified with the stock ``standardwebhooks`` library), retried when the receiver fails, never
lost or invented when a process dies, duplicates recognisable by their id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
import warm
from standardwebhooks import Webhook

from calibration_policy import CalibrationUpdatePolicy, PolicyError, UpdateOptions, run_update
from calibration_policy.context import Context
from calibration_policy.delivery import deliver_pass, deliveries_for, redeliver
from calibration_policy.governor import Change, Governor
from calibration_policy.outbox import OutboxBusy
from calibration_policy.pipeline import settle_interrupted
from calibration_policy.stores import open_archive, open_outbox
from calibration_policy.target import JsonFileTarget

from .conftest import T0, build_result
from .receiver import start_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULES = {"min_sample_size": 1, "min_vega_sum": 0, "min_delta_global": 0.001, "min_delta_band": 0.001}
CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    """Runs, archive, suggestions and the outbox under one data root, as a host keeps them."""
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path / "data"))
    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver():
    found = start_receiver()
    yield found
    found.server.shutdown()


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return SECRET


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "live.json"
    path.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    return JsonFileTarget(path, name="spy_live")


def policy(url: str, **endpoint) -> CalibrationUpdatePolicy:
    return CalibrationUpdatePolicy(
        **RULES, notify=[{"name": "desk", "url": url, "secret_env": "HOOK_SECRET", **endpoint}]
    )


def update(target, rules, day=0, g=1.1):
    return run_update(
        build_result(global_m=g),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=T0 + timedelta(days=day)),
        context=Context.build(policy=rules),
    )


def test_an_applied_update_reaches_the_receiver_signed_once(store_url, receiver, secret, target):
    rules = policy(receiver.url)
    outcome = update(target, rules)
    assert outcome.applied
    report = deliver_pass(open_outbox(), rules.notify)
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [got] = receiver.got
    payload = Webhook(secret).verify(got.body, got.headers)  # the stock library accepts the signature
    event = payload["data"]
    assert event["status"] == "applied" and event["run_id"] == outcome.run.run_id
    assert event["change_id"] == outcome.change.change_id and got.headers["webhook-id"] == event["event_id"]
    assert event["after"]["global"] == outcome.change.new_values["global"]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(got.body, got.headers)  # another secret does not verify
    assert deliver_pass(open_outbox(), rules.notify).sent == 0  # sent is sent: nothing twice
    [row] = deliveries_for(outcome.change.change_id)
    assert (row["endpoint"], row["state"], row["code"], row["attempts"]) == ("desk", "sent", 200, 1)


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(store_url, receiver, secret, target):
    rules = policy(receiver.url)
    update(target, rules)
    receiver.answers.extend([500, 503])
    first = deliver_pass(open_outbox(), rules.notify)
    assert (first.sent, first.retrying) == (0, 1) and "answered 500" in first.errors[0]
    [record] = open_outbox().records()
    delivery = record["deliveries"]["desk"]
    waited = (delivery["next_at"], delivery["log"][-1]["at"])
    from datetime import datetime

    gap = datetime.fromisoformat(waited[0]) - datetime.fromisoformat(waited[1])
    assert timedelta(seconds=15) <= gap <= timedelta(seconds=30)  # the first retry: 30 s, jittered down to half
    assert deliver_pass(open_outbox(), rules.notify).sent == 0  # not due yet: nothing sent
    assert len(receiver.got) == 1
    later = datetime.fromisoformat(delivery["next_at"]) + timedelta(seconds=1)
    assert deliver_pass(open_outbox(), rules.notify, now=later).retrying == 1  # 503
    [record] = open_outbox().records()
    after = datetime.fromisoformat(record["deliveries"]["desk"]["next_at"]) + timedelta(seconds=1)
    assert deliver_pass(open_outbox(), rules.notify, now=after).sent == 1
    assert len(set(receiver.ids())) == 1 and len(receiver.got) == 3  # three tries of one message id
    log = open_outbox().get(receiver.ids()[0])["deliveries"]["desk"]["log"]
    assert [entry["code"] for entry in log] == [500, 503, 200]
    assert log[0]["error"] == "desk answered 500 Internal Server Error." and log[0]["next_at"]


def test_a_delivery_that_keeps_failing_for_a_day_is_given_up_and_can_be_redelivered(
    store_url, receiver, secret, target
):
    rules = policy(receiver.url)
    update(target, rules)
    receiver.answers.extend([500, 500])
    deliver_pass(open_outbox(), rules.notify)
    [record] = open_outbox().records()
    from datetime import datetime

    day_later = datetime.fromisoformat(record["deliveries"]["desk"]["first_at"]) + timedelta(hours=24, seconds=1)
    assert deliver_pass(open_outbox(), rules.notify, now=day_later).failed == 1
    assert deliver_pass(open_outbox(), rules.notify, now=day_later + timedelta(hours=1)).sent == 0  # given up
    redeliver(open_outbox(), record["event"]["event_id"])
    assert deliver_pass(open_outbox(), rules.notify).sent == 1
    assert receiver.ids() == [record["event"]["event_id"]] * 3


def test_timeouts_and_redirects_are_failures_said_in_a_sentence(receiver, secret, target):
    rules = policy(receiver.url, timeout_seconds=0.3)
    update(target, rules)
    receiver.delay = 1.0
    report = deliver_pass(open_outbox(), rules.notify)
    assert report.retrying == 1 and report.errors[0].endswith("desk did not answer within 0.3 s.")
    receiver.delay = 0.0
    receiver.answers.append(302)
    update(target, policy(receiver.url, timeout_seconds=0.3), day=1, g=1.2)
    [_, record] = open_outbox().records()
    deliver_pass(open_outbox(), rules.notify, now=None)
    log = open_outbox().get(record["event"]["event_id"])["deliveries"]["desk"]["log"]
    assert log[-1]["code"] == 302 and "a redirect, which is not followed" in log[-1]["error"]
    assert not any(r.path.endswith("/moved") for r in receiver.got)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/hook", "is not an http:// or https:// address"),
        ("example.com/hook", "is not an http:// or https:// address"),
        ("http://:80/hook", "with a host"),
        ("http://example.com:99999/hook", "is malformed"),
    ],
)
def test_a_bad_url_is_refused_when_the_policy_loads(url, words):
    with pytest.raises(PolicyError, match=words):
        CalibrationUpdatePolicy(notify=[{"name": "desk", "url": url, "secret_env": "X"}])


def test_a_secret_in_the_policy_file_is_refused_and_never_shown(tmp_path, monkeypatch, receiver, target):
    path = tmp_path / "policy.toml"
    path.write_text('[[notify]]\nname = "desk"\nurl = "https://example.com/h"\nsecret = "whsec_topsecret"\n')
    with pytest.raises(PolicyError, match="put it in an environment variable") as error:
        CalibrationUpdatePolicy.from_toml(path)
    assert "topsecret" not in str(error.value)
    with pytest.raises(PolicyError, match="webhook endpoint 'desk' signs its messages"):
        CalibrationUpdatePolicy(notify=[{"name": "desk", "url": "https://example.com/h"}])
    rules = policy(receiver.url)
    update(target, rules)
    report = deliver_pass(open_outbox(), rules.notify)  # HOOK_SECRET is not set
    assert report.errors[0].endswith("The environment variable HOOK_SECRET (the secret of desk) is not set.")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    redeliver(open_outbox(), open_outbox().records().__next__()["event"]["event_id"])
    deliver_pass(open_outbox(), rules.notify)
    assert SECRET.removeprefix("whsec_") not in json.dumps(list(open_outbox().records()))
    assert SECRET.removeprefix("whsec_") not in json.dumps(rules.model_dump(mode="json"))


def test_the_endpoints_filters_and_both_forms_of_the_table(tmp_path, receiver, secret, target):
    path = tmp_path / "policy.toml"
    path.write_text(
        "min_sample_size = 1\nmin_vega_sum = 0\nmin_delta_global = 0.001\nmin_delta_band = 0.001\n"
        f'[notify.desk]\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\nstatuses = ["waiting"]\n'
        f'[notify.weights]\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\ndomains = "scoring_weights"\n'
    )
    rules = CalibrationUpdatePolicy.from_toml(path)
    assert [e.name for e in rules.notify] == ["desk", "weights"]
    update(target, rules)  # applied, on vol_surface: neither endpoint wants it
    assert deliver_pass(open_outbox(), rules.notify).sent == 0 and receiver.got == []
    waiting = rules.model_copy(update={"require_approval": True})
    update(target, waiting, day=1, g=1.3)
    assert deliver_pass(open_outbox(), rules.notify).sent == 1
    assert json.loads(receiver.got[0].body)["data"]["status"] == "waiting"


class _RecordsThenFails(Change):
    kind = "policy_set"
    action = "propose"

    def intent(self):
        return None

    def perform(self, step):
        step.event("recorded", "about to fail")
        raise ValueError("The change failed after recording its event.")


def test_a_change_that_raises_leaves_no_event(store_url):
    with pytest.raises(ValueError, match="failed after recording"):
        Governor(Context.build(policy=CalibrationUpdatePolicy(), actor="ana")).execute(_RecordsThenFails())
    assert list(open_outbox().records()) == []


def test_one_worker_at_a_time(store_url, receiver, secret, target):
    rules = policy(receiver.url)
    update(target, rules)
    with open_outbox().worker():
        with pytest.raises(OutboxBusy, match="Another delivery worker is running"):
            deliver_pass(open_outbox(), rules.notify)
    assert deliver_pass(open_outbox(), rules.notify).sent == 1


UPDATER = textwrap.dedent("""
    import importlib.util, json, sys
    from datetime import datetime, timedelta, timezone
    spec = importlib.util.spec_from_file_location("fixtures", sys.argv[1]); fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    from calibration_policy import Context, UpdateOptions
    from calibration_policy import CalibrationUpdatePolicy, run_update
    from calibration_policy.target import JsonFileTarget
    day, live, approval = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "approval"
    sample = 10**9 if sys.argv[4] == "refuse" else 1  # refuse: the rules never apply it (not_applied)
    policy = CalibrationUpdatePolicy(min_sample_size=sample, min_vega_sum=0, min_delta_global=0.001,
                                     min_delta_band=0.001, require_approval=approval)
    t0 = datetime(2025, 12, 10, 21, tzinfo=timezone.utc)
    run_update(fixtures.build_result(global_m=round(1.0 + 0.01 * (day + 1), 4), bands={}), underlying='SPY', source='live', target=JsonFileTarget(live, name='spy_live'), options=UpdateOptions(timestamp=t0 + timedelta(days=day)), context=Context.build(policy=policy))
""")


def _wait_until_free(target) -> None:
    from calibration_policy import active_store

    deadline = time.monotonic() + 10
    while active_store().intents.in_progress(None, target.name):
        assert time.monotonic() < deadline, "a dead process's intent lock was never freed"
        time.sleep(0.02)


def _routes(store_url: str) -> list[str]:
    # PostgreSQL writes a change and its event in one transaction; the file store's routes settle differently.
    return ["apply", "approval", "refuse"] if store_url == "files" else ["approval"]


@pytest.mark.parametrize("route", ["apply", "approval", "refuse"])
def test_an_update_killed_at_every_durable_step_leaves_only_true_events(
    store_url, tmp_path, receiver, secret, route, fork
):
    """Killed at each durable write in turn, then settled: every live change and every waiting suggestion has
    exactly one event, every event describes something that happened, and each reaches the receiver."""
    if route not in _routes(store_url):
        pytest.skip("one transaction holds a change and its event on PostgreSQL: the approval route covers it")
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    kills = 0
    for step in range(1, 120):
        child = fork.script(UPDATER, [str(CONFTEST), str(step), str(live), route], kill_at=step)
        if child.returncode == 0:
            break
        assert child.returncode == 86, child.stderr[-2000:]
        kills += 1
        _wait_until_free(target)
        settle_interrupted(target)
    assert kills >= 5, f"only {kills} kill points"
    changes = open_archive(None, target.name).entries()
    events = [r["event"] for r in open_outbox().records()]
    told = [e["change_id"] for e in events if e["change_id"]]
    assert sorted(told) == sorted(c.change_id for c in changes), (
        "a live change without its one event, or an invented one"
    )
    from calibration_policy.stores import open_reviews

    waiting = [e["suggestion_id"] for e in events if e["status"] == "waiting"]
    suggested = [s.suggestion_id for s in open_reviews().all(target=target.name)]  # a later one expires the last
    assert sorted(waiting) == sorted(suggested), "a suggestion without its one waiting event, or an invented one"
    for event in events:
        if event["status"] == "waiting":
            assert open_reviews().get(event["suggestion_id"]).run_id == event["run_id"]
    from calibration_policy import load_recent_calibration_history

    runs = load_recent_calibration_history("SPY", limit=1000)
    proposed = {s.run_id for s in open_reviews().all(target=target.name)}
    refused = [
        r.run_id
        for r in runs
        if r.applied is False and r.run_id not in proposed and not (r.decision or {}).get("settled")
    ]  # decided by the rules (a run settling marked not applied, killed before any decision, was decided by nobody)
    said = [e["run_id"] for e in events if e["status"] == "not_applied"]
    assert sorted(said) == sorted(refused), "a decision of the rules not to apply without its one event"
    if route == "refuse":
        assert refused, "the rules refused nothing"
    assert deliver_pass(open_outbox(), policy(receiver.url).notify).sent == len(events)
    assert sorted(receiver.ids()) == sorted(e["event_id"] for e in events)


def _killed_meanwhile(target, **info):
    """A change of ``target`` that began (its intent written, its lock held) and is killed later: call the result
    to let go of the lock as a SIGKILL would, leaving the intent to be settled."""
    from calibration_policy import active_store

    intent = active_store().intents.begin(None, target.name, "update", **info)
    return intent.release


def test_settling_a_killed_update_never_announces_a_change_another_writer_made_meanwhile(
    tmp_path, receiver, secret, target
):
    """Found by benchmarks/bench_outbox_kill.py: an update killed while it waited for the lock was settled with
    the event of the change its peer had made meanwhile: that change went out twice, under two ids."""
    rules = policy(receiver.url)
    die = _killed_meanwhile(target)
    peer = update(target, rules, day=1, g=1.2)  # the peer's change, and its own event, after the killed one began
    assert peer.applied
    die()
    assert settle_interrupted(target)
    events = [r["event"] for r in open_outbox().records()]
    assert [e["change_id"] for e in events] == [peer.change.change_id], "the peer's change was announced twice"
    assert deliver_pass(open_outbox(), rules.notify).sent == 1


def test_a_killed_updates_suggestion_is_announced_even_when_a_newer_one_expired_it_first(
    tmp_path, receiver, secret, target
):
    """Found by benchmarks/bench_outbox_kill.py: a suggestion saved by an update killed before its waiting event,
    then expired by a newer suggestion before anyone settled the killed update, was never announced."""
    from calibration_policy.stores import open_reviews

    rules = policy(receiver.url).model_copy(update={"require_approval": True})
    from calibration_policy.naming import run_file_name, utc_stamp

    die = _killed_meanwhile(target, run_id=run_file_name(utc_stamp(T0 + timedelta(days=1)), "SPY", "live")[:-5])
    killed = update(target, rules, day=1, g=1.2)  # what the killed update got as far as: its run and suggestion
    [record] = open_outbox().records()
    open_outbox().discard([record["event"]["event_id"]])  # killed before it wrote its waiting event
    newer = update(target, rules, day=2, g=1.3)  # a newer suggestion expires the killed update's
    assert open_reviews().get(killed.run.pending_suggestion).status == "expired"
    die()
    settle_interrupted(target)
    waiting = sorted(e["suggestion_id"] for e in (r["event"] for r in open_outbox().records()))
    assert waiting == sorted([killed.run.pending_suggestion, newer.run.pending_suggestion])
    assert deliver_pass(open_outbox(), rules.notify).sent == 2


DELIVERER = textwrap.dedent("""
    import sys
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.delivery import deliver_pass
    from calibration_policy.stores import open_outbox
    rules = CalibrationUpdatePolicy(notify=[{"name": "desk", "url": sys.argv[1], "secret_env": "HOOK_SECRET"}])
    print("started", flush=True)
    deliver_pass(open_outbox(), rules.notify)
""")


def test_a_deliverer_killed_mid_delivery_loses_nothing_and_repeats_by_id(store_url, tmp_path, receiver, secret, target):
    rules = policy(receiver.url)
    for day in range(30):
        update(target, rules, day=day, g=round(1.1 + 0.01 * day, 3))
    expected = {r["event"]["event_id"] for r in open_outbox().records()}
    assert len(expected) == 30
    receiver.delay = 0.15  # slow enough for the kill to land while messages are on their way
    script = tmp_path / "deliverer.py"
    script.write_text(DELIVERER)
    child = warm.popen([sys.executable, str(script), receiver.url], stdout=subprocess.PIPE, env=dict(os.environ))
    assert child.stdout.readline().strip() == b"started"
    deadline = time.monotonic() + 30
    while len(receiver.got) < 4:
        assert time.monotonic() < deadline and child.poll() is None, "the deliverer never got going"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    # A request the worker sent just before it died can still be in the receiver's socket queue: what was in flight
    # is what arrives until the receiver has been quiet for a while (CI once counted one such request as a repeat).
    seen, quiet_since = len(receiver.got), time.monotonic()
    while time.monotonic() - quiet_since < 0.5:
        time.sleep(0.05)
        if len(receiver.got) != seen:
            seen, quiet_since = len(receiver.got), time.monotonic()
    got_before = set(receiver.ids())
    assert 0 < len(got_before) < 30
    receiver.delay = 0.0
    deadline = time.monotonic() + 30
    while True:  # PostgreSQL frees the dead worker's lock once it notices the closed connection
        try:
            deliver_pass(open_outbox(), rules.notify)
            break
        except OutboxBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert set(receiver.ids()) == expected  # every event at least once
    repeats = [i for i in set(receiver.ids()) if receiver.ids().count(i) > 1]
    assert set(repeats) <= got_before  # only messages in flight when the worker died, each under its own id
    assert all(receiver.ids().count(i) <= 2 for i in repeats)
    assert all(d["state"] == "sent" for r in open_outbox().records() for d in r["deliveries"].values())


def test_slack_text_names_the_underlying_the_move_and_links_the_panel():
    from calibration_policy.default_plugins.notifiers import slack_text

    event = {
        "kind": "update",
        "status": "waiting",
        "domain": "vol_surface",
        "underlying": "QQQ",
        "target": "qqq_live",
        "actor": "policy",
        "via": "cli",
        "before": {"global": 1.05, "weekly": 1.1, "monthly": 1.162},
        "after": {"global": 1.05, "weekly": 1.1, "monthly": 1.173},
    }
    text = slack_text(event, "https://panel.example.com/")
    assert text.startswith("QQQ IV multipliers waiting for approval: monthly 1.162 → 1.173 (update by policy via cli)")
    assert text.endswith("<https://panel.example.com/|open in the panel>")


def test_slack_endpoint_posts_text_from_an_address_in_the_environment(monkeypatch, receiver, target):
    monkeypatch.setenv("SLACK_URL", receiver.url)
    rules = CalibrationUpdatePolicy(**RULES, notify=[{"name": "chat", "deliverer": "slack", "url_env": "SLACK_URL"}])
    update(target, rules)
    assert deliver_pass(open_outbox(), rules.notify).sent == 1
    assert json.loads(receiver.got[0].body)["text"].startswith("SPY IV multipliers went live: global 1 → 1.1")
    assert receiver.url not in json.dumps(rules.notify[0].public())


def test_outbox_commands(receiver, secret, target, tmp_path, monkeypatch):
    from calibration_policy.cli import main

    path = tmp_path / "policy.toml"
    path.write_text(f'[[notify]]\nname = "desk"\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n')
    update(target, policy(receiver.url))
    receiver.answers.append(500)
    assert main(["outbox", "run", "--policy", str(path)]) == 0
    assert main(["outbox", "list", "--json"]) == 0
    assert main(["outbox", "redeliver", "nope"]) == 2
    [record] = open_outbox().records()
    event_id = record["event"]["event_id"]
    assert main(["outbox", "redeliver", event_id]) == 0
    assert main(["outbox", "run", "--policy", str(path)]) == 0
    assert receiver.ids() == [event_id, event_id]
    assert open_outbox().get(event_id)["deliveries"]["desk"]["state"] == "sent"


POLICY_CHANGER = textwrap.dedent("""
    import sys
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.changes import PolicyPropose, PolicyReview, PolicyRollBack, PolicySet
    from calibration_policy.context import Context
    from calibration_policy.governor import Governor
    kind, step, proposal = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    calmer = CalibrationUpdatePolicy(min_delta_global=round(0.02 + 0.001 * step, 4))
    change = {
        "set": lambda: PolicySet(calmer, f"calmer, try {step}"),
        "roll_back": lambda: PolicyRollBack(proposal, f"back, try {step}"),
        "propose": lambda: PolicyPropose(calmer, f"proposal, try {step}"),
        "approve": lambda: PolicyReview(proposal, approve=True, notes="fine"),
        "reject": lambda: PolicyReview(proposal, approve=False, notes="no"),
    }[kind]()
    Governor(Context.build(actor="bo" if kind in ("approve", "reject") else "ana", via="cli")).execute(change)
""")


def _policy_event_ids() -> set[str]:
    """The event each announced policy record is owed (its id derives from the record)."""
    from calibration_policy.policy_events import proposal_event, version_event
    from calibration_policy.policy_versions import PolicyProposals, PolicyVersions

    owed = {version_event(v).event_id for v in PolicyVersions().versions() if v.announced}
    return owed | {proposal_event(p, s).event_id for p in PolicyProposals().all() for s in p.announced}


@pytest.mark.parametrize("kind", ["set", "roll_back", "propose", "approve", "reject"])
def test_a_policy_change_killed_at_every_durable_step_is_announced_once(store_url, tmp_path, kind, fork):
    """A policy change is one record, then its event: killed between the two (or anywhere else), the next policy
    change, a delivery pass or ``doctor --repair`` announces it once, and nothing that did not happen is announced."""
    from calibration_policy.changes import PolicyPropose, PolicySet
    from calibration_policy.policy_events import settle_policy_events
    from calibration_policy.policy_versions import PolicyVersions

    governor = Governor(Context.build(actor="ana", via="cli"))
    first = governor.execute(PolicySet(CalibrationUpdatePolicy(min_delta_global=0.05), "a first version"))
    kills, lost = 0, 0
    for step in range(1, 60):
        proposal = first.version_id
        if kind in ("approve", "reject"):  # each try reviews a proposal of its own
            proposal = governor.execute(PolicyPropose(CalibrationUpdatePolicy(), f"for try {step}")).proposal_id
        child = fork.script(POLICY_CHANGER, [kind, str(step), proposal], kill_at=step)
        if child.returncode == 0:
            break
        assert child.returncode == 86, child.stderr[-2000:]
        kills += 1
        PolicyVersions().settle_interrupted()  # the policy file follows a version that got archived
        lost += len(_policy_event_ids() - {r["event"]["event_id"] for r in open_outbox().records()})
        assert settle_policy_events() >= 0  # a delivery pass does this first (`outbox run`)
    assert kills >= 2, f"only {kills} kill points"
    assert lost >= 1, "no kill landed between a record and its event: the sweep proves nothing"
    events = [r["event"] for r in open_outbox().records() if r["event"]["kind"].startswith("policy_")]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "a policy change announced twice"
    assert set(ids) == _policy_event_ids(), "a policy change without its event, or an event of none"
    assert settle_policy_events() == 0  # settling again adds nothing


def test_doctor_repair_announces_a_policy_change_whose_event_was_lost(store_url, capsys):
    from calibration_policy.changes import PolicySet
    from calibration_policy.cli import main

    version = Governor(Context.build(actor="ana", via="cli")).execute(
        PolicySet(CalibrationUpdatePolicy(min_delta_global=0.05), "calmer")
    )
    (record,) = open_outbox().records()
    open_outbox().discard([record["event"]["event_id"]])  # as if the process died before writing it
    assert main(["doctor", "--repair"]) in (0, 1)
    capsys.readouterr()
    (again,) = open_outbox().records()
    assert again["event"]["event_id"] == record["event"]["event_id"]  # the same id: a listener sees one change
    assert again["event"]["reason"] == (
        f"Policy version {version.version_id} ({version.fingerprint}) is live, set by ana: calmer"
        " (announced when the interrupted change was settled)"
    )
    assert main(["doctor", "--repair"]) in (0, 1) and len(list(open_outbox().records())) == 1
