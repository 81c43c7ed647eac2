"""The JSON API: shapes, paging, force-apply, as-of, plain 4xx errors, and the OpenAPI schema."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calibration_policy.archive import Archive

from .conftest import Host, csrf_of


def test_status_reports_live_values_latest_run_and_policy(host: Host, client):
    outcome = host.record(global_m=1.08)
    body = client.get("/calibration/api/status", params={"underlying": "spy"}).json()
    assert body["underlying"] == "SPY" and body["title"] == "IV multipliers" and body["target"] == "vol_surface_SPY"
    assert {row["scope"]: row["value"] for row in body["current"]} == host.config("SPY")
    assert [row["label"] for row in body["current"]] == ["Global", "Monthly (20–40d)", "Weekly (3–10d)"]
    assert all(row["last_updated"] for row in body["current"])
    latest = body["latest_run"]
    assert latest["status"] == "applied" and latest["reason"] == outcome.run.applied_reason
    assert latest["recommended"]["global"] == 1.08
    assert {rule["label"] for rule in latest["rules"]} >= {"Enough options in the sample", "Change large enough"}
    assert body["policy"]["explanation"].startswith("The system smooths calibration results over the last 14 days")
    assert body["policy"]["settings"]["min_delta_global"] == 0.03
    assert body["current_error"] is None and body["pending_suggestions"] == []


def test_runs_are_paged_newest_first(host: Host, client):
    for day in range(12):
        host.record(day=day, global_m=1.0 + day / 100)
    first = client.get("/calibration/api/runs", params={"underlying": "SPY", "limit": 5}).json()
    assert first["total"] == 12 and len(first["runs"]) == 5
    assert first["runs"][0]["recommended"]["global"] == pytest.approx(1.11)
    last = client.get("/calibration/api/runs", params={"underlying": "SPY", "limit": 5, "offset": 10}).json()
    assert [r["recommended"]["global"] for r in last["runs"]] == [pytest.approx(1.01), pytest.approx(1.0)]
    assert client.get("/calibration/api/runs", params={"underlying": "SPY", "offset": 50}).json()["runs"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "nan"},
        {"limit": "inf"},
        {"offset": -1},
        {"offset": "1e309"},
        {"limit": "ten"},
        {"offset": 10**30},
    ],
)
def test_bad_paging_numbers_are_a_plain_400(host: Host, client, params):
    host.record()
    response = client.get("/calibration/api/runs", params={"underlying": "SPY", **params})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid request: ")


@pytest.mark.parametrize("url", ["/calibration/api/status", "/calibration/api/runs", "/calibration/api/as-of"])
@pytest.mark.parametrize("underlying, status", [("QQQ", 404), ("../x", 400), ("", 400), ("<b>", 400)])
def test_unknown_or_hostile_underlying(host: Host, client, url, underlying, status):
    host.record()
    response = client.get(url, params={"underlying": underlying, "at": "2025-12-01"})
    assert response.status_code == status
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".")


def test_missing_underlying_is_a_plain_400(client):
    response = client.get("/calibration/api/status")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid request: underlying is required."}


def test_force_apply_over_json(host: Host, client):
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    token = csrf_of(client)
    response = client.post(
        "/calibration/api/force-apply",
        json={"underlying": "SPY", "use": "recommended"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["applied"] and body["change_id"]
    assert body["message"] == "Applied calibration from 2025-12-01 21:00 UTC to vol surface (SPY)."
    assert body["reason"].startswith("Applied: forced by user (the policy alone said: change too small")
    assert body["values"] == host.config("SPY") == {"global": 1.01, "monthly": 1.01, "weekly": 1.01}
    assert body["run"]["forced"] is True


@pytest.mark.parametrize(
    "payload",
    [
        {"underlying": 123},
        {"underlying": "SPY", "use": "bogus"},
        {"underlying": "SPY", "extra": 1},
        {"underlying": "SPY", "run_id": "../../etc/passwd"},
        {"underlying": "SPY", "run_id": 5},
        {},
        {"underlying": "SPY", "use": None},
        [1, 2],
    ],
)
def test_force_apply_rejects_bad_bodies_without_changing_anything(host: Host, client, payload):
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    token = csrf_of(client)
    response = client.post("/calibration/api/force-apply", json=payload, headers={"X-CSRF-Token": token})
    assert 400 <= response.status_code < 500
    assert isinstance(response.json()["detail"], str)
    assert host.config("SPY")["global"] == 1.0


def test_force_apply_with_non_json_body_is_a_400(host: Host, client):
    host.record()
    token = csrf_of(client)
    response = client.post(
        "/calibration/api/force-apply",
        content=b"{not json",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


def test_as_of_answers_what_was_live_then(host: Host, client):
    assert host.record(day=0, global_m=1.08).applied
    first = Archive(host.archive_dir, "vol_surface_SPY").entries()[0]
    assert host.record(day=1, global_m=1.2, weekly=1.2, monthly=1.2).applied
    second = Archive(host.archive_dir, "vol_surface_SPY").entries()[1]
    between = first.at + (second.at - first.at) / 2
    body = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": between.isoformat()}).json()
    assert body["values"] == first.new_values and body["change_id"] == first.change_id
    assert body["message"].startswith("These values were live from ")
    now = client.get(
        "/calibration/api/as-of", params={"underlying": "SPY", "at": (second.at + timedelta(seconds=1)).isoformat()}
    ).json()
    assert now["values"] == host.config("SPY") and now["message"].endswith("and still are.")
    that_day = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": second.at.date().isoformat()})
    assert that_day.json()["values"] == host.config("SPY")  # a bare date: the end of that UTC day, as the CLI reads it
    before = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": "2000-01-01"}).json()
    assert before["values"] == {"global": 1.0, "monthly": 1.0, "weekly": 1.0}  # the original config
    assert before["message"].startswith("These values were live from before records began")


def test_as_of_without_any_recorded_change(host: Host, client):
    host.record(global_m=1.0, weekly=1.0, monthly=1.0)
    body = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": "2025-12-01T12:00Z"}).json()
    assert body["values"] == host.config("SPY")
    assert body["message"].startswith("No change has been recorded")


@pytest.mark.parametrize("at", ["yesterday", "2025-13-01", "nan", "2025-12-01T25:00"])
def test_as_of_with_a_bad_time_is_a_400(host: Host, client, at):
    host.record()
    response = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": at})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"at {at!r} is not a date or time; use YYYY-MM-DD (the end of that UTC day) or an ISO time such as "
        "2025-12-01T14:00Z."
    )


def test_openapi_documents_the_api_with_response_models(host: Host, client):
    schema = client.app.openapi()
    paths = schema["paths"]
    for path in (
        "/calibration/api/status",
        "/calibration/api/runs",
        "/calibration/api/as-of",
        "/calibration/api/csrf-token",
    ):
        assert "get" in paths[path]
    assert "post" in paths["/calibration/api/force-apply"]
    assert "/calibration/" not in paths and "/calibration/force-apply" not in paths  # the pages are not API
    ok = paths["/calibration/api/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/StatusOut")
    assert paths["/calibration/api/status"]["get"]["responses"]["404"]["content"]["application/json"]["schema"][
        "$ref"
    ].endswith("/ErrorOut")
    models = schema["components"]["schemas"]
    for name in ("StatusOut", "RunOut", "RunsPage", "ForceApplyIn", "ForceApplyOut", "AsOfOut", "ErrorOut"):
        assert name in models
    assert set(models["RunOut"]["properties"]) >= {"timestamp", "recommended", "smoothed", "status", "reason", "rules"}
