"""The calibration panel: a FastAPI router a host adds to its own app (the ``[ui]`` extra)."""

from .router import create_router, plugin

__all__ = ["create_router", "plugin"]
