"""Fixtures for the panel tests: real runs recorded through the core's update flow, a host app
with an auth dependency, and a client that is signed in.

Calibration results have the host's real shape (DESIGN §1); nothing of ours is mocked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.pipeline import run_update
from calibration_policy.target import JsonFileTarget
from calibration_policy_ui import create_router

T0 = datetime(2025, 12, 1, 21, 0, tzinfo=UTC)
USER_HEADER = "X-Test-User"


def host_result(
    global_m: float = 1.05,
    weekly: float = 1.07,
    monthly: float = 1.03,
    n: int = 412,
    vega_sum: float = 12400.0,
    extra_bands: dict[str, tuple[int, int, float]] | None = None,
) -> dict[str, Any]:
    """A result as the host's ``run_calibration_extended`` returns it (any number of bands)."""
    bands = {"weekly": (3, 10, weekly), "monthly": (20, 40, monthly), **(extra_bands or {})}
    return {
        "dropped_count": 37,
        "global_metrics": {
            "n": n,
            "vega_sum": vega_sum,
            "mae_vol_points": 1.84,
            "vega_weighted_mae_pct": 4.37,
            "recommended_iv_multiplier": global_m,
        },
        "bands": {
            name: {
                "min_dte": lo,
                "max_dte": hi,
                "n": n // 2,
                "vega_sum": vega_sum / 2,
                "mae_vol_points": 1.9,
                "vega_weighted_mae_pct": 4.1,
                "recommended_iv_multiplier": m,
            }
            for name, (lo, hi, m) in bands.items()
        },
        "buckets": [{"dte_bucket": "3-10", "abs_delta_bucket": "0.10-0.25", "n": n // 4, "vega_sum": vega_sum / 8}],
        "anchor_ratios": {"0.1": 1.12, "0.25": 1.05},
        "recommended_vol_surface": {"iv_multiplier": global_m, "bands": {name: m for name, (_, _, m) in bands.items()}},
        "snapshot_sensors": {"spot": 601.25},
    }


def require_user(request: Request) -> str:
    """The test host's auth: a user header, or 401."""
    user = request.headers.get(USER_HEADER)
    if not user:
        raise HTTPException(401, "Sign in first.")
    request.state.user = user
    return user


@dataclass
class Host:
    """A data folder, its live configs, and a way to record runs into it."""

    root: Path
    policy: CalibrationUpdatePolicy = field(default_factory=CalibrationUpdatePolicy)

    @property
    def history_dir(self) -> Path:
        return self.root / "calibration_runs"

    @property
    def archive_dir(self) -> Path:
        return self.root / "config_archive"

    @property
    def suggestions_dir(self) -> Path:
        return self.root / "suggestions"

    def config_path(self, underlying: str) -> Path:
        return self.root / "config" / f"vol_surface_{underlying}.json"

    def target_for(self, underlying: str) -> JsonFileTarget:
        path = self.config_path(underlying)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"global": 1.0, "monthly": 1.0, "weekly": 1.0}))
        return JsonFileTarget(path)

    def config(self, underlying: str) -> dict[str, float]:
        return json.loads(self.config_path(underlying).read_text())

    def record(
        self, underlying: str = "SPY", day: int = 0, force: bool = False, actor: str | None = None, **result: Any
    ):
        """An update of ``underlying`` with the host's result on day ``day`` (``force``: forced by ``actor``)."""
        return run_update(
            host_result(**result),
            underlying=underlying,
            source="harvested",
            target=self.target_for(underlying),
            options=UpdateOptions(timestamp=T0 + timedelta(days=day), force=force),
            context=Context.build(
                policy=self.policy,
                history_dir=self.history_dir,
                archive_dir=self.archive_dir,
                suggestions_dir=self.suggestions_dir,
                actor=actor,
            ),
        )

    def app(self, **options: Any) -> FastAPI:
        app = FastAPI()
        settings: dict[str, Any] = dict(
            history_dir=self.history_dir,
            archive_dir=self.archive_dir,
            suggestions_dir=self.suggestions_dir,
            policy=lambda: self.policy,
            target_for=self.target_for,
            dependencies=[Depends(require_user)],
            current_user=lambda request: getattr(request.state, "user", None),
            secret="test-secret",
        )
        settings.update(options)
        app.include_router(create_router(**settings), prefix="/calibration")
        return app


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "data")


@pytest.fixture
def make_client(host: Host) -> Callable[..., TestClient]:
    def make(user: str | None = "ana", **options: Any) -> TestClient:
        client = TestClient(host.app(**options), base_url="http://agent.test")
        if user:
            client.headers[USER_HEADER] = user
        return client

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def csrf_of(client: TestClient, html: str | None = None) -> str:
    """The token of the page (or of ``GET /api/csrf-token``); its cookie is now in the client."""
    if html is not None:
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match, "the page has no CSRF field"
        return match.group(1)
    return client.get("/calibration/api/csrf-token").json()["csrf_token"]


def text_of(html: str) -> str:
    """The page's words, tags removed and spaces collapsed, for plain-English assertions."""
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
    return re.sub(r" ([:;,.)])", r"\1", text)


@pytest.fixture
def served(tmp_path: Path):
    """The options agent's app with the panel, on a free loopback port, stopped afterwards (browser tests)."""
    from .agent import agent_app_module, fill
    from .browser import serving

    data = tmp_path / "data"
    fill(data, "SPY", days=8)
    fill(data, "QQQ", days=3)
    with serving(agent_app_module().create_app(data, secret="browser-test")) as url:
        yield url, data


def counted_megabytes(sent: list[int], count: int = 16) -> Iterator[bytes]:
    """A request body of ``count`` MiB, noting each MiB as the client hands it over: a server that refuses before
    reading leaves ``sent`` at one chunk at most."""
    for _ in range(count):
        sent.append(1)
        yield b" " * (1024 * 1024)
