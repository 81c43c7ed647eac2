"""Packaged CSS, script and icons: right types, long caching for versioned URLs, nothing else served."""

from __future__ import annotations

import re

import pytest

from calibration_policy_ui.static_files import ASSETS


@pytest.mark.parametrize(
    "name, media_type",
    [
        ("panel.css", "text/css; charset=utf-8"),
        ("standalone.css", "text/css; charset=utf-8"),
        ("panel.js", "text/javascript; charset=utf-8"),
        ("icons/check.svg", "image/svg+xml"),
    ],
)
def test_files_are_served_with_their_type(client, name, media_type):
    response = client.get(f"/calibration/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=300"


def test_versioned_urls_are_cached_for_a_year_and_revalidate_by_etag(client):
    html = client.get("/calibration/").text
    url = re.search(r'href="(/calibration/static/panel.css\?v=[0-9a-f]+)"', html).group(1)
    response = client.get(url)
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = response.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "nope.css",
        "../router.py",
        "..%2Frouter.py",
        "icons%2F..%2Fpanel.css",
        "%2e%2e/%2e%2e/pyproject.toml",
        "templates/calibration_policy_ui/base.html",
    ],
)
def test_anything_but_a_packaged_file_is_a_404(client, path):
    response = client.get(f"/calibration/static/{path}")
    assert response.status_code == 404
    assert "Traceback" not in response.text


def test_every_icon_the_templates_use_is_packaged():
    for name in ("check.svg", "dash.svg", "cross.svg", "clock.svg", "alert.svg"):
        assert f"icons/{name}" in ASSETS


def test_panel_css_is_scoped_to_the_panel():
    css = ASSETS["panel.css"].body.decode()
    selectors = [
        s.strip()
        for block in re.findall(r"([^{}]+)\{", re.sub(r"/\*.*?\*/", "", css, flags=re.S))
        for s in block.split(",")
        if not s.strip().startswith("@media")
    ]
    assert selectors and all(s.startswith(".cp-panel") for s in selectors), [
        s for s in selectors if not s.startswith(".cp-panel")
    ]
