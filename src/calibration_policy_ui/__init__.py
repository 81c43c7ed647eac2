"""The calibration panel: a FastAPI router a host adds to its own app (the ``[ui]`` extra).

``create_router`` and ``plugin`` are imported on first use, so the ``serve`` command module can
be loaded by the core CLI even where FastAPI is not installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_router", "plugin"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import router

        return getattr(router, name)
    raise AttributeError(f"module 'calibration_policy_ui' has no attribute {name!r}")
