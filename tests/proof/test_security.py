"""Security: no path outside the data folders is ever read or written, whatever names come in.

A sandbox holds the data folders (``root/``), a neighbour folder with secrets (``secret/``, with a
file named exactly like a run, as bait for traversal) and the working directory. The public API,
the CLI and (when the panel exists) the HTTP routes are driven with hostile names while
``sys.addaudithook`` records every file-system event Python raises (open, rename/replace, link,
remove, mkdir, rmdir, chmod, listdir/scandir, sqlite3.connect). Then:

* every *write* (anywhere on the machine) is inside ``root/``;
* no event at all — not even a read or a listing — touches the sandbox outside ``root/``;
* a before/after snapshot of the sandbox outside ``root/`` is byte-for-byte identical, and the
  repository's own live config and data folder are untouched.

Positive control: the same audit sees the legitimate writes of normal calls inside ``root/``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from proofkit import (
    HOST_PLUGINS,
    ORIGINAL_JSON_CONFIG,
    REPO,
    T0,
    build_result,
    host_create_app,
    tree,
)

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    HistoryStore,
    UpdateOptions,
    load_recent_calibration_history,
    record_calibration_result,
)
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive
from calibration_policy.pipeline import approve_suggestion, force_apply, reject_suggestion, run_update
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
AUDITED = {
    "open",
    "os.rename",
    "os.link",
    "os.remove",
    "os.mkdir",
    "os.rmdir",
    "os.chmod",
    "os.symlink",
    "os.truncate",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
    "os.listdir",
    "os.scandir",
    "sqlite3.connect",
    "os.chdir",
}
WRITING = {
    "os.rename",
    "os.link",
    "os.remove",
    "os.mkdir",
    "os.rmdir",
    "os.chmod",
    "os.symlink",
    "os.truncate",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
AUDIT: dict[str, Any] = {"active": False, "events": []}


def _hook(event: str, args: tuple) -> None:
    if not AUDIT["active"] or event not in AUDITED:
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if isinstance(path, int) or path is None:
            return
        writes = bool(
            (isinstance(mode, str) and any(c in mode for c in "wax+"))
            or (isinstance(flags, int) and flags & WRITE_FLAGS)
        )
        AUDIT["events"].append((event, os.fsdecode(path), writes, os.getcwd()))
        return
    cwd = os.getcwd()
    for path in args:
        if isinstance(path, (str, bytes, os.PathLike)):
            AUDIT["events"].append((event, os.fsdecode(path), event in WRITING, cwd))


if not getattr(sys, "_calibration_policy_proof_audit", False):  # audit hooks cannot be removed: add ours once
    sys.addaudithook(_hook)
    sys._calibration_policy_proof_audit = True  # type: ignore[attr-defined]


class Audited:
    def __enter__(self) -> list[tuple[str, Path, bool]]:
        AUDIT["events"] = []
        AUDIT["active"] = True
        return self.found

    def __exit__(self, *exc: object) -> None:
        AUDIT["active"] = False
        self.found.extend(
            (event, Path(os.path.normpath(os.path.join(cwd, path))), writes)
            for event, path, writes, cwd in AUDIT["events"]
        )

    def __init__(self) -> None:
        self.found: list[tuple[str, Path, bool]] = []


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# -- the sandbox --------------------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    box = tmp_path / "sandbox"
    root, secret, cwd = box / "root", box / "secret", box / "cwd"
    for folder in (root / "config", secret, cwd):
        folder.mkdir(parents=True)
    (secret / "secret.json").write_text('{"api_key": "hunter2"}')
    bait = build_result()
    (secret / "20250101T000000.000000Z_SPY_live.json").write_text(json.dumps(bait))  # looks like a run
    (secret / "live.json").write_text(json.dumps({"global": 9.9}))  # looks like a live config
    (secret / "archive-bait").mkdir()
    monkeypatch.chdir(cwd)
    config = root / "config" / "live.json"
    config.write_text(json.dumps(ORIGINAL_JSON_CONFIG) + "\n")
    world = {
        "box": box,
        "root": root,
        "secret": secret,
        "cwd": cwd,
        "config": config,
        "history": root / "history",
        "archive": root / "archive",
        "suggestions": root / "suggestions",
        "target": JsonFileTarget(config),
    }
    for i in range(3):
        record_calibration_result(
            build_result(global_m=1 + i / 20),
            "SPY",
            "live",
            history_dir=world["history"],
            timestamp=T0 + timedelta(days=i),
        )
    apply_values(world["target"], {"global": 1.05}, archive_dir=world["archive"], kind="force", reason="Applied: seed")
    outcome = run_update(
        build_result(global_m=1.3),
        underlying="SPY",
        source="live",
        target=world["target"],
        options=UpdateOptions(timestamp=T0 + timedelta(days=4)),
        context=Context.build(
            history_dir=world["history"],
            archive_dir=world["archive"],
            suggestions_dir=world["suggestions"],
            policy=CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0.0),
        ),
    )
    world["pending"] = outcome.run.pending_suggestion
    return world


TRAVERSALS = [
    "../secret/secret",
    "../../secret",
    "..%2fsecret%2fsecret",
    "%2e%2e%2fsecret",
    "../secret/20250101T000000.000000Z_SPY_live",
    "a/../../secret",
    "/etc/passwd",
    "..\\secret",
    "secret\x00.json",
    "\u2025/secret",
    "....//secret",
    "~/.ssh/id_rsa",
]


def _hostile_calls(w: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
    calls: list[tuple[str, Callable[[], Any]]] = []
    for name in TRAVERSALS:
        calls += [
            (
                f"record underlying {name!r}",
                lambda n=name: record_calibration_result(build_result(), n, "live", history_dir=w["history"]),
            ),
            (
                f"record source {name!r}",
                lambda n=name: record_calibration_result(build_result(), "SPY", n, history_dir=w["history"]),
            ),
            (f"load {name!r}", lambda n=name: load_recent_calibration_history(n, history_dir=w["history"])),
            (f"get run {name!r}", lambda n=name: HistoryStore(w["history"]).get(n)),
            (
                f"force run_id {name!r}",
                lambda n=name: force_apply(
                    "SPY",
                    run_id=n,
                    target=w["target"],
                    context=Context.build(history_dir=w["history"], archive_dir=w["archive"]),
                ),
            ),
            (
                f"update underlying {name!r}",
                lambda n=name: run_update(
                    build_result(),
                    underlying=n,
                    source="live",
                    target=w["target"],
                    context=Context.build(history_dir=w["history"], archive_dir=w["archive"]),
                ),
            ),
            (f"suggestion get {name!r}", lambda n=name: ReviewStore(w["suggestions"]).get(n)),
            (
                f"suggestion approve {name!r}",
                lambda n=name: approve_suggestion(
                    n,
                    target=w["target"],
                    context=Context.build(suggestions_dir=w["suggestions"], actor="ana", archive_dir=w["archive"]),
                ),
            ),
            (
                f"suggestion reject {name!r}",
                lambda n=name: reject_suggestion(
                    n, context=Context.build(suggestions_dir=w["suggestions"], actor="ana")
                ),
            ),
            (
                f"rollback {name!r}",
                lambda n=name: rollback(w["target"], n, context=Context.build(archive_dir=w["archive"])),
            ),
            (f"archive {name!r}", lambda n=name: Archive(w["archive"], n).entries()),
            (f"target name {name!r}", lambda n=name: JsonFileTarget(w["config"], name=n)),
        ]
    return calls


def _cli_calls(w: dict[str, Any]) -> list[list[str]]:
    common = [
        "--history-dir",
        str(w["history"]),
        "--archive-dir",
        str(w["archive"]),
        "--plugins-dir",
        str(HOST_PLUGINS),
    ]
    calls = []
    for name in TRAVERSALS:
        if "\x00" in name:
            continue
        calls += [
            ["history", name, *common],
            ["force", "-u", "SPY", "--run-id", name, *common, "--config", str(w["root"] / "config" / "vol.json")],
            ["as-of", "2025-12-10", "--target", name, "--archive-dir", str(w["archive"])],
            [
                "weights",
                "reject",
                name,
                "--by",
                "ana",
                "--weights",
                str(w["root"] / "weights.json"),
                "--history-dir",
                str(w["history"]),
                "--archive-dir",
                str(w["archive"]),
                "--suggestions-dir",
                str(w["suggestions"]),
            ],
        ]
    return calls


def _outside_state(w: dict[str, Any]) -> dict[str, str]:
    return {p: d for p, d in tree(w["box"]).items() if not p.startswith("root")}


def _repo_state() -> dict[str, str]:
    return {
        **{f"config/{k}": v for k, v in tree(HOST_PLUGINS.parent / "config").items()},
        **{f"data/{k}": v for k, v in tree(REPO / "data").items() if not k.startswith("harvest")},
    }


def _check(events: list[tuple[str, Path, bool]], w: dict[str, Any]) -> dict[str, int]:
    writes = [(e, p) for e, p, writes in events if writes]
    stray_writes = [(e, str(p)) for e, p in writes if not _inside(p, w["root"])]
    assert not stray_writes, f"writes outside the data folders: {stray_writes[:5]}"
    touched = [
        (e, str(p))
        for e, p, _ in events
        if _inside(p, w["box"]) and not _inside(p, w["root"]) and not (e == "os.listdir" and p == w["cwd"])
    ]
    assert not touched, f"the sandbox outside the data folders was read or listed: {touched[:5]}"
    return {"events": len(events), "writes": len(writes)}


def test_hostile_names_never_reach_outside_the_data_folders(sandbox) -> None:
    before, repo = _outside_state(sandbox), _repo_state()
    refused = 0
    audit = Audited()
    with audit:
        for label, call in _hostile_calls(sandbox):
            try:
                call()
            except ValueError:
                refused += 1
            else:
                pytest.fail(f"{label} was accepted")
    counts = _check(audit.found, sandbox)
    assert _outside_state(sandbox) == before and _repo_state() == repo
    assert refused == len(_hostile_calls(sandbox))
    print(f"\n[security] API: {refused} hostile calls refused, {counts}", file=sys.stderr)


def test_hostile_cli_arguments_never_reach_outside(sandbox, capsys) -> None:
    from calibration_policy.cli import main

    (sandbox["root"] / "config" / "vol.json").write_text(json.dumps({"iv_multiplier": 1.0, "bands": {}}))
    before, repo = _outside_state(sandbox), _repo_state()
    audit = Audited()
    codes = []
    with audit:
        for argv in _cli_calls(sandbox):
            try:
                codes.append(main(argv))
            except SystemExit as stop:
                codes.append(stop.code)
    capsys.readouterr()
    assert set(codes) == {2}, codes
    _check(audit.found, sandbox)
    assert _outside_state(sandbox) == before and _repo_state() == repo


def test_audit_sees_legitimate_writes(sandbox) -> None:
    """Positive control: the hook records real writes, so an empty list above means something."""
    audit = Audited()
    with audit:
        record_calibration_result(build_result(), "SPY", "live", history_dir=sandbox["history"])
        apply_values(
            sandbox["target"], {"global": 1.2}, archive_dir=sandbox["archive"], kind="force", reason="Applied: x"
        )
        approve_suggestion(
            sandbox["pending"],
            target=sandbox["target"],
            context=Context.build(
                suggestions_dir=sandbox["suggestions"],
                actor="ana",
                archive_dir=sandbox["archive"],
                history_dir=sandbox["history"],
            ),
        )
        rollback(sandbox["target"], "original", context=Context.build(archive_dir=sandbox["archive"]))
    counts = _check(audit.found, sandbox)
    written = {p.parent for e, p, w in audit.found if w}
    assert {
        sandbox["history"],
        sandbox["archive"] / "live",
        sandbox["root"] / "config",
        sandbox["suggestions"],
    } <= written
    assert counts["writes"] >= 10


def test_http_routes_never_reach_outside(sandbox) -> None:
    create_app = host_create_app()
    if create_app is None:
        pytest.skip("the calibration panel (calibration_policy_ui.router) or the host app does not exist yet")
    from fastapi.testclient import TestClient

    data = sandbox["root"] / "panel"
    (data / "config").mkdir(parents=True)
    (data / "config" / "vol_surface_SPY.json").write_text(
        json.dumps({"iv_multiplier": 1.0, "bands": {"weekly": {"min_dte": 3, "max_dte": 10, "iv_multiplier": 1.0}}})
    )
    record_calibration_result(build_result(), "SPY", "harvested", history_dir=data / "calibration_runs", timestamp=T0)
    client = TestClient(
        create_app(data, plugins_dir=HOST_PLUGINS, password=None, secret="s"),
        raise_server_exceptions=False,
        follow_redirects=False,
    )
    token = client.get("/calibration/api/csrf-token").json()["csrf_token"]
    before, repo = _outside_state(sandbox), _repo_state()
    audit = Audited()
    statuses = []
    with audit:
        for name in TRAVERSALS:
            enc = name.replace("/", "%2F").replace("\x00", "%00").replace("\\", "%5C")
            for method, url, kwargs in [
                ("GET", f"/calibration/static/{enc}", {}),
                ("GET", "/calibration/static/..%2F..%2F..%2Fsecret%2Fsecret.json", {}),
                ("GET", "/calibration/api/status", {"params": {"underlying": name}}),
                ("GET", "/calibration/api/as-of", {"params": {"underlying": name, "at": "2025-12-10"}}),
                ("POST", "/calibration/api/force-apply", {"json": {"underlying": "SPY", "run_id": name}}),
                ("POST", "/calibration/api/force-apply", {"json": {"underlying": name}}),
                ("POST", f"/calibration/suggestions/{enc}/approve", {"data": {"underlying": "SPY"}}),
                ("POST", f"/calibration/suggestions/{enc}/reject", {"data": {"underlying": "SPY"}}),
                ("GET", "/calibration/", {"params": {"underlying": name}}),
            ]:
                response = client.request(method, url, headers={"X-CSRF-Token": token}, **kwargs)
                statuses.append(response.status_code)
                assert "hunter2" not in response.text
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    _check(audit.found, sandbox)
    assert _outside_state(sandbox) == before and _repo_state() == repo


def test_http_reflected_input_is_escaped(sandbox) -> None:
    """Cross-check of the UI engineer's XSS tests: hostile text sent in is never echoed as live HTML."""
    create_app = host_create_app()
    if create_app is None:
        pytest.skip("the calibration panel (calibration_policy_ui.router) or the host app does not exist yet")
    from fastapi.testclient import TestClient

    data = sandbox["root"] / "panel"
    (data / "config").mkdir(parents=True)
    (data / "config" / "vol_surface_SPY.json").write_text(json.dumps({"iv_multiplier": 1.0, "bands": {}}))
    record_calibration_result(
        build_result(bands={}), "SPY", "harvested", history_dir=data / "calibration_runs", timestamp=T0
    )
    client = TestClient(
        create_app(data, plugins_dir=HOST_PLUGINS, password=None, secret="s"),
        raise_server_exceptions=False,
        follow_redirects=False,
    )
    token = client.get("/calibration/api/csrf-token").json()["csrf_token"]
    payload = "<script>alert(1)</script>"
    responses = [
        client.get("/calibration/", params={"underlying": payload}),
        client.get("/calibration/", params={"underlying": "SPY", "scope": payload}),
        client.get("/calibration/", params={"underlying": "SPY", "page": payload}),
        client.get("/calibration/force-apply", params={"underlying": payload}),
        client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": payload}),
        client.post(
            "/calibration/force-apply",
            headers={"X-CSRF-Token": token},
            data={"underlying": "SPY", "run_id": payload, "confirm": "yes"},
        ),
        client.post(
            f"/calibration/suggestions/{payload.replace('/', '%2F')}/reject",
            headers={"X-CSRF-Token": token},
            data={"underlying": "SPY", "notes": payload},
        ),
    ]
    for response in responses:
        assert response.status_code < 500
        if response.headers.get("content-type", "").startswith("text/html"):
            assert payload not in response.text, f"{response.url}: unescaped input in the page"
