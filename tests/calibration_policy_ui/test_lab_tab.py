"""The "Try a policy" tab: replay a candidate beside the live policy and propose it for review."""

from __future__ import annotations

import json
import re
from html import unescape

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.policy_versions import PolicyProposals, PolicyVersions
from calibration_policy.stores import open_outbox

from .conftest import Host, csrf_of, text_of


def _record_days(host: Host, n: int = 12) -> None:
    for day in range(n):
        host.record(day=day, global_m=1.0 + 0.012 * day, weekly=1.0 + 0.01 * day, monthly=1.0 + 0.011 * day)


def test_the_tab_replays_a_candidate_and_lists_what_it_decides_otherwise(host: Host, client):
    _record_days(host)
    page = client.get("/calibration/lab")
    assert (
        page.status_code == 200
        and "Try a policy" in page.text
        and 'name="min_delta_global" inputmode="decimal" value="0.03"' in page.text
    )
    before = {p: p.read_bytes() for p in host.root.rglob("*.json")}
    result = client.get(
        "/calibration/lab",
        params={"underlying": "SPY", "min_delta_global": "0.01", "min_delta_band": "0.01", "cooldown_period.days": "2"},
    )
    words = text_of(result.text)
    assert result.status_code == 200 and "<svg" in result.text, re.findall(r'role="alert"><p>([^<]*)', result.text)
    assert "current" in words and "candidate" in words and "Where the candidate decides differently" in words
    assert re.search(r"the live policy (applies|holds): .*; the candidate (applies|holds): ", words)
    assert {p: p.read_bytes() for p in host.root.rglob("*.json")} == before  # a replay writes nothing


def test_a_bad_threshold_is_named_and_nothing_is_replayed(host: Host, client):
    _record_days(host, 3)
    result = client.get("/calibration/lab", params={"underlying": "SPY", "min_delta_global": "-1"})
    assert result.status_code == 400 and "min_delta_global" in text_of(result.text)
    result = client.get("/calibration/lab", params={"underlying": "SPY", "min_delta_global": "abc"})
    assert result.status_code == 400 and "must be a number" in text_of(result.text)


def test_a_candidate_goes_live_only_when_a_reviewer_approves_it(host: Host, client):
    _record_days(host, 5)
    page = client.get("/calibration/lab", params={"underlying": "SPY", "min_delta_global": "0.02"})
    candidate = unescape(re.search(r'name="candidate" value="([^"]+)"', page.text).group(1))
    evidence = unescape(re.search(r'name="evidence" value="([^"]+)"', page.text).group(1))
    token = csrf_of(client, page.text)
    done = client.post(
        "/calibration/lab/propose",
        data={"csrf_token": token, "candidate": candidate, "evidence": evidence, "reason": "react a bit faster"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    proposals = PolicyProposals(host.root)
    (proposal,) = proposals.pending()
    assert proposal.proposer == "ana" and proposal.evidence["underlying"] == "SPY"
    assert PolicyVersions(host.root).versions() == []  # proposing changed nothing
    page = client.get("/calibration/lab")
    assert "react a bit faster" in text_of(page.text)
    done = client.post(
        f"/calibration/lab/proposals/{proposal.proposal_id}/approve",
        data={"csrf_token": csrf_of(client, page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    (version,) = PolicyVersions(host.root).versions()
    assert version.actor == "ana" and "react a bit faster" in version.reason
    assert CalibrationUpdatePolicy.load(data_dir=host.root).min_delta_global == 0.02
    assert json.loads(candidate)["min_delta_global"] == 0.02
    # both were governed changes: announced in the data root's outbox, from the panel, by who did them
    events = [record["event"] for record in open_outbox(host.root).records() if record["event"]["kind"] != "update"]
    assert [(e["kind"], e["status"], e["via"], e["actor"]) for e in events] == [
        ("policy_propose", "waiting", "panel", "ana"),
        ("policy_approve", "applied", "panel", "ana"),
    ]


def test_under_four_eyes_the_proposer_cannot_approve_their_own_policy(host: Host, client, make_client):
    host.root.mkdir(parents=True, exist_ok=True)
    (host.root / "calibration_policy.toml").write_text("require_distinct_approver = true\n")
    proposal = PolicyProposals(host.root).propose(
        CalibrationUpdatePolicy(min_delta_global=0.02), actor="ana", reason="faster"
    )
    page = client.get("/calibration/lab")
    done = client.post(
        f"/calibration/lab/proposals/{proposal.proposal_id}/approve", data={"csrf_token": csrf_of(client, page.text)}
    )
    assert "ana proposed policy proposal" in text_of(done.text) and PolicyVersions(host.root).versions() == []
    bo = make_client(user="bo")
    page = bo.get("/calibration/lab")
    bo.post(f"/calibration/lab/proposals/{proposal.proposal_id}/approve", data={"csrf_token": csrf_of(bo, page.text)})
    (version,) = PolicyVersions(host.root).versions()
    assert version.actor == "bo"


def test_proposing_needs_the_csrf_token(host: Host, client):
    _record_days(host, 2)
    done = client.post("/calibration/lab/propose", data={"candidate": "{}", "reason": "x"}, follow_redirects=False)
    assert done.status_code in (400, 403)
    assert PolicyProposals(host.root).pending() == []


REVIEWED_POLICY = """store = "postgresql://calib:s3cret-pw@db.internal/calibration"
require_distinct_approver = true

[permissions.roles]
operator = ["view", "propose"]
admin = ["*"]

[permissions.users]
mallory = ["operator"]
ana = ["admin"]
"""


def test_a_reviewer_sees_every_setting_a_proposal_changes_and_approving_keeps_the_store(
    host: Host, make_client, monkeypatch
):
    """The card once read "by mallory: tidy thresholds [Approve] [Reject]" while the proposal made mallory an admin;
    approving it rewrote the policy file without its store line."""
    monkeypatch.setenv("CALIBRATION_STORE", "files")  # this machine's store; the file names the shared one
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    host.root.mkdir(parents=True, exist_ok=True)
    (host.root / "calibration_policy.toml").write_text(REVIEWED_POLICY)
    live = PolicyVersions(host.root).in_force().model_dump(mode="json")
    live["permissions"]["users"]["mallory"] = ["admin"]
    proposal = PolicyProposals(host.root).propose(
        CalibrationUpdatePolicy.from_dict({**live, "min_delta_global": 0.05, "store": None}),
        actor="mallory",
        reason="tidy thresholds",
    )
    ana = make_client(user="ana")
    page = ana.get("/calibration/lab")
    card = text_of(re.search(r'<li class="cp-proposal".*?</li>', page.text, re.S).group(0))
    assert "by mallory: tidy thresholds" in card
    assert "Approving it changes 2 settings of the live policy, 1 of them sensitive" in card
    assert 'permissions.users.mallory (sensitive: who may do what) ["operator"] ["admin"]' in card
    assert "min_delta_global 0.03 0.05" in card and "s3cret-pw" not in page.text
    api = ana.get("/calibration/api/policy/proposals")
    assert api.status_code == 200
    (shown,) = api.json()
    assert shown["proposal_id"] == proposal.proposal_id and shown["proposer"] == "mallory"
    assert {c["setting"]: (c["before"], c["after"], c["sensitive"]) for c in shown["changes"]} == {
        "min_delta_global": (0.03, 0.05, None),
        "permissions.users.mallory": (["operator"], ["admin"], "who may do what"),
    }
    assert ana.get("/calibration/api/policy/proposals/20990101T000000Z").status_code == 404
    done = ana.post(
        f"/calibration/lab/proposals/{proposal.proposal_id}/approve",
        data={"csrf_token": csrf_of(ana, page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    written = (host.root / "calibration_policy.toml").read_text()
    assert 'store = "postgresql://calib:s3cret-pw@db.internal/calibration"' in written
    assert CalibrationUpdatePolicy.load(data_dir=host.root).min_delta_global == 0.05
    one = ana.get(f"/calibration/api/policy/proposals/{proposal.proposal_id}").json()
    assert one["status"] == "approved" and one["reviewer"] == "ana" and len(one["changes"]) == 2


def test_a_proposal_that_no_longer_reads_as_a_policy_says_why_and_the_page_still_shows(host: Host, client):
    from datetime import UTC, datetime

    proposals = PolicyProposals(host.root)
    at = datetime.now(UTC)
    proposals.box.create(
        at,
        {
            "at": at.isoformat(),
            "proposer": "bo",
            "reason": "old",
            "policy": {"min_delta_global": -1},
            "status": "pending",
        },
    )
    page = client.get("/calibration/lab")
    assert page.status_code == 200
    assert "It cannot be shown as a policy: Invalid calibration policy: min_delta_global" in text_of(page.text)
