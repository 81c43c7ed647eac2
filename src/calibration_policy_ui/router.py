"""``create_router(...)``: the calibration panel as routes a host adds to the app it already has.

    app.include_router(create_router(target_for=..., dependencies=[Depends(require_login)]),
                       prefix="/calibration")

Everything the panel needs comes in as arguments (data folders, the policy, the host's live
config per underlying, its auth, its templates), so the host stays in charge and the core
library never imports this package.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from calibration_policy.paths import data_root
from calibration_policy.tamper import load_in_force
from calibration_policy.target import Target

from .access import permission_guard
from .errors import panel_route_class
from .limits import BodyLimits, admission, early_permission_check
from .panel import DEFAULT_BASE_TEMPLATE, PolicySource, TemplatesArg, make_panel
from .tabs import TabContext, installed_tabs

PathArg = str | os.PathLike[str] | None


def create_router(
    *,
    target_for: Callable[[str], Target],
    history_dir: PathArg = None,
    archive_dir: PathArg = None,
    suggestions_dir: PathArg = None,
    policy: PolicySource | None = None,
    dependencies: Sequence[Any] = (),
    templates: TemplatesArg = None,
    base_template: str = DEFAULT_BASE_TEMPLATE,
    current_user: Callable[[Request], str | None] | None = None,
    secret: str | bytes | None = None,
    trusted_origins: Sequence[str] = (),
    tab_options: Mapping[str, Mapping[str, Any]] | None = None,
    permissions: Callable[[Any, str, str], bool] | None = None,
    body_limits: BodyLimits | int | str | Mapping[str, int | str] | None = None,
) -> APIRouter:
    """Build the panel's router with every installed tab (built in: the runs, the scoring weights, the lab).

    - ``target_for(underlying) -> Target``: the host's live config for a symbol.
    - ``history_dir`` / ``archive_dir`` / ``suggestions_dir``: the core's folders (``None``: the
      core's defaults and environment variables, as the CLI uses them).
    - ``policy``: a policy, or a zero-argument callable asked on every request so an edited
      TOML shows at once; default: ``CalibrationUpdatePolicy.load`` next to the history folder.
    - ``dependencies``: the host's ``Depends(...)`` for auth; applied to every route.
    - ``templates``: the host's ``Jinja2Templates``, Jinja loader, or template folder(s); asked
      before ours, so the host's layout and any ``calibration_policy_ui/*.html`` override win.
    - ``base_template``: the host layout the panel extends; it needs a ``content`` block.
    - ``current_user(request)``: the signed-in user's name, recorded as the reviewer.
    - ``secret``: signs the CSRF and flash cookies; set it (or ``$CALIBRATION_PANEL_SECRET``)
      when several worker processes serve the app, otherwise each has its own.
    - ``trusted_origins``: extra ``https://host`` origins allowed to POST (behind a proxy that
      rewrites ``Host``).
    - ``tab_options``: options for installed tab plugins, by tab name (``{"risk_limits": {...}}``); the
      scoring-weights tab takes ``weights_path``, ``trades_path`` and ``settings`` (defaults:
      ``scoring_weights.json``, ``trades.parquet`` and ``scoring_weights.toml`` in the data folder, the
      runs folder's parent).
    - ``permissions(user, action, domain) -> bool``: who may do what (``user`` is what
      ``current_user`` returns; actions: view, propose, approve, reject, modify, force_apply,
      roll_back, change_policy). Default: the policy's ``[permissions]`` table, else everyone
      signed in may do everything. Checked on every request, at submit time.
    - ``body_limits``: the largest request body a route accepts (a 413 beyond it): one size for the forms
      and JSON changes (``"64KiB"``), or by route name (``{"default": "64KiB", "api_weights_analyze": "50MiB"}``).
      Default: ``$CALIBRATION_PANEL_BODY_LIMIT`` / ``$CALIBRATION_PANEL_UPLOAD_LIMIT``, else 64 KiB and 20 MiB
      for the trades upload.
    """
    if not callable(target_for):
        raise TypeError("target_for must be a function that returns the live config (a Target) for an underlying.")
    tabs = installed_tabs()
    data_dir = Path(history_dir).parent if history_dir is not None else data_root()
    panel = make_panel(
        target_for=target_for,
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=suggestions_dir,
        policy_source=policy if policy is not None else (lambda: load_in_force(data_dir=data_dir)),
        templates=templates,
        base_template=base_template,
        current_user=current_user,
        secret=secret,
        trusted_origins=trusted_origins,
        tabs=tuple(tabs.values()),
        permissions=permissions,
    )
    guard = permission_guard(panel)
    admit = admission(BodyLimits.of(body_limits), early_permission_check(panel, guard))
    router = APIRouter(
        dependencies=[*dependencies, Depends(guard)],
        route_class=panel_route_class(panel.render_error, admit),
    )
    options = tab_options or {}
    for name, tab in tabs.items():  # every tab shares the host's auth, CSRF, templates and layout
        tab.add_routes(router, TabContext(panel, options.get(name, {})))
    return router


@dataclass(frozen=True)
class PanelPlugin:
    """What the ``calibration_policy_ui`` entry point names: call it to get the router.

    A host that discovers UI plugins in a loop can use ``title`` for its navigation and
    ``prefix`` as the default mount point::

        for ep in entry_points(group="calibration_policy_ui"):
            plugin = ep.load()
            app.include_router(plugin(target_for=..., dependencies=auth), prefix=plugin.prefix)
    """

    name: str = "calibration"
    title: str = "Calibration"
    prefix: str = "/calibration"

    def __call__(self, **options: Any) -> APIRouter:
        return create_router(**options)


plugin = PanelPlugin()
