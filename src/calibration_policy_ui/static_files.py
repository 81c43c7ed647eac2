"""The panel's CSS, script and icons, served by a plain GET route on the router.

A ``StaticFiles`` mount would not travel with ``app.include_router``, so the files are read
once from the package and served by a route like any other (the host's auth applies to it
too). Each URL carries a hash of the file's content, so browsers may cache it for a year and
still see a new version at once after an upgrade. Nothing is fetched from a CDN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response

from .errors import PanelError

STATIC_ROUTE = "calibration_policy_ui.static"
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CACHE_VERSIONED = "public, max-age=31536000, immutable"
CACHE_UNVERSIONED = "public, max-age=300"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for item in folder.iterdir():
        name = prefix + item.name
        if item.is_dir():
            found.update(_walk(item, name + "/"))
            continue
        media_type = MEDIA_TYPES.get("." + item.name.rsplit(".", 1)[-1])
        if media_type is not None:
            body = item.read_bytes()
            found[name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return found


ASSETS: dict[str, Asset] = _walk(resources.files("calibration_policy_ui") / "static")


def asset_url(request: Request, name: str) -> str:
    """The path of a packaged file, with its content hash for cache busting."""
    return f"{request.url_for(STATIC_ROUTE, path=name).path}?v={ASSETS[name].version}"


def serve_asset(request: Request, path: str) -> Response:
    """Only the packaged files, by exact name: ``../`` or anything unknown is a plain 404."""
    asset = ASSETS.get(path)
    if asset is None:
        raise PanelError(404, "There is no such file in the calibration panel.")
    versioned = request.query_params.get("v") == asset.version
    headers = {
        "ETag": asset.etag,
        "Cache-Control": CACHE_VERSIONED if versioned else CACHE_UNVERSIONED,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
