"""The panel's shared state: where the data is, the live policy, the host's targets, rendering.

One :class:`Panel` is built by :func:`calibration_policy_ui.create_router` and closed over by
every route, so a route is a few lines: read the request, ask the core, render.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import NoMatchFound

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.humanize import fmt_count, fmt_value
from calibration_policy.permissions import actor_name, allowed, check_callable, governing
from calibration_policy.permissions import explain as explain_permissions
from calibration_policy.target import Target

from .errors import PanelError
from .security import CSRF_FIELD, SECRET_ENV, Signer, csrf_token, set_csrf_cookie
from .static_files import asset_url

ROUTE_PREFIX = "calibration_policy_ui."
DEFAULT_BASE_TEMPLATE = "calibration_policy_ui/base.html"
HTML_HEADERS = {
    "Cache-Control": "no-store",  # live state and a CSRF token: never from a cache
    "X-Frame-Options": "DENY",  # the force-apply button must not be clickable through a frame
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

_PANEL_OPENING = re.compile(rb'<div class="cp-panel"[^>]*>')  # every page's scope element (DESIGN §7)

PolicySource = CalibrationUpdatePolicy | Callable[[], CalibrationUpdatePolicy]
TemplatesArg = jinja2.BaseLoader | Jinja2Templates | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def fmt_time(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "–"


def fmt_date(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d") if moment is not None else "–"


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates shared by every panel of the process: a host that mounts several panels, or builds its
    app again (a reload, each test), compiles each template once, not once per app (a third of a second).
    Jinja keys a template by its name and file and checks the source's checksum, so a host's override or an
    edited file is compiled anew; every environment here has the same options, which the code depends on."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def build_templates(templates: TemplatesArg) -> Jinja2Templates:
    """Our templates behind the host's: the host's loader is asked first, so its base layout
    and any template it puts at ``calibration_policy_ui/<name>.html`` win over ours.

    Autoescaping is always on in this environment, whatever the host's own setting.
    """
    ours = jinja2.PackageLoader("calibration_policy_ui", "templates")
    host_env: jinja2.Environment | None = None
    processors: list[Callable[[Request], dict[str, Any]]] = []
    if isinstance(templates, Jinja2Templates):
        host_env, processors = templates.env, list(templates.context_processors)
        host_loader = host_env.loader
    elif isinstance(templates, jinja2.BaseLoader):
        host_loader = templates
    elif templates is None:
        host_loader = None
    else:
        host_loader = jinja2.FileSystemLoader(templates)
    loader = jinja2.ChoiceLoader([host_loader, ours]) if host_loader is not None else ours
    # auto_reload: an edited override shows on the next request when the host runs with reload
    # (jinja2 checks the file's mtime; the cost is one stat per template per render).
    env = jinja2.Environment(loader=loader, autoescape=True, auto_reload=True, bytecode_cache=_COMPILED)
    if host_env is not None:  # the host's base layout may use its own globals and filters
        env.globals.update(host_env.globals)
        env.filters.update(host_env.filters)
        env.tests.update(host_env.tests)
    env.filters.update(cp_value=fmt_value, cp_time=fmt_time, cp_date=fmt_date, cp_count=fmt_count)
    return Jinja2Templates(env=env, context_processors=processors)


def make_panel(
    *,
    target_for: Callable[[str], Target],
    policy_source: PolicySource,
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
    templates: TemplatesArg = None,
    base_template: str = DEFAULT_BASE_TEMPLATE,
    current_user: Callable[[Request], str | None] | None = None,
    secret: str | bytes | None = None,
    trusted_origins: Sequence[str] = (),
    tabs: tuple[Any, ...] = (),
    permissions: Callable[[Any, str, str], bool] | None = None,
) -> Panel:
    """The panel's shared state from the host's arguments (see ``create_router`` for each)."""
    folder = lambda value: Path(value) if value is not None else None  # noqa: E731
    permissions = check_callable(permissions)  # refused at start-up, before the secret is stored
    return Panel(
        history_dir=folder(history_dir),
        archive_dir=folder(archive_dir),
        suggestions_dir=folder(suggestions_dir),
        policy_source=policy_source,
        target_for=target_for,
        templates=build_templates(templates),
        base_template=base_template,
        signer=Signer(secret or os.environ.get(SECRET_ENV) or _stored_secret(history_dir)),
        trusted_origins=frozenset(o.rstrip("/") for o in trusted_origins),
        current_user=current_user,
        tabs=tabs,
        permissions=permissions,
    )


def _stored_secret(history_dir) -> bytes | None:
    """The secret kept under the data folder (beside the runs folder when one is given)."""
    from calibration_policy.paths import data_root

    from .security import stored_secret

    return stored_secret(Path(history_dir).parent if history_dir is not None else data_root())


@dataclass(frozen=True)
class Panel:
    history_dir: Path | None
    archive_dir: Path | None
    suggestions_dir: Path | None
    policy_source: PolicySource
    target_for: Callable[[str], Target]
    templates: Jinja2Templates
    base_template: str
    signer: Signer
    trusted_origins: frozenset[str]
    current_user: Callable[[Request], str | None] | None = None
    tabs: tuple[Any, ...] = ()  # the installed PanelTabs, for the navigation
    permissions: Callable[[Any, str, str], bool] | None = None  # the host's permissions(user, action, domain)
    # route-name prefix → (domain, its policy source): a tab with its own policy (the scoring weights) registers here
    domains: dict[tuple[str, ...], tuple[str, Callable[[], CalibrationUpdatePolicy]]] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        """The data folder tabs keep their files in: the runs folder's parent when the host named it, else the
        data root (``$CALIBRATION_DATA``)."""
        from calibration_policy.paths import data_root

        return self.history_dir.parent if self.history_dir is not None else data_root()

    def context(self, actor: Any, via: str, policy: CalibrationUpdatePolicy | None = None) -> Context:
        """What the panel's changes run in: its data folders, the policy it shows (or a tab's own, which only
        narrows who may do what), the host's permission check, who acts and from where (``panel``/``api``)."""
        shown = self.policy()
        context = Context.build(
            policy=policy or shown,
            actor=actor,
            via=via,
            permissions=self.permissions,
            history_dir=self.history_dir,
            archive_dir=self.archive_dir,
            suggestions_dir=self.suggestions_dir,
            data_dir=self.data_dir,
        )
        return context if policy is None else replace(context, narrowed_by=(shown,))

    def domain_of(self, route_name: str) -> tuple[str, Any]:
        """The domain a route acts on, and who may do what there: the policy in force, narrowed (never
        widened) by a tab's own policy (the scoring weights' settings)."""
        for prefixes, (domain, policy_of) in self.domains.items():
            if route_name.startswith(prefixes):
                return domain, governing(self.policy(), policy_of())
        policy = self.policy()
        return policy.domain, policy

    def actor(self, request: Request, typed: str | None = None) -> Any:
        """Who acts: the host's user (the object ``current_user`` returns), else the name typed in the form."""
        try:
            user = self.current_user(request) if self.current_user is not None else None
        except (AttributeError, KeyError):  # the host set no user on this request: nobody is signed in
            user = None
        return user if user is not None and user != "" else (typed or None)

    def can(
        self, request: Request, action: str, domain: str | None = None, policy: CalibrationUpdatePolicy | None = None
    ) -> bool:
        """Whether to show a button; the server's check at submit time is what counts."""
        try:
            in_force = self.policy()
            return allowed(
                action,
                actor=self.actor(request),
                domain=domain or (policy or in_force).domain,
                policy=governing(in_force, policy),
                permissions=self.permissions,
            )
        except (CalibrationPolicyError, PanelError):
            return False

    def permissions_text(self, policy: CalibrationUpdatePolicy | None = None) -> str:
        """Who may do what, in plain English, beside the policy text (which already describes a [permissions] table)."""
        try:
            policy = policy or self.policy()
        except PanelError:
            policy = None
        if self.permissions is None and getattr(policy, "permissions", None) is not None:
            return ""
        return explain_permissions(None, host_callable=self.permissions is not None)

    def nav(self, request: Request, current: str) -> list[dict[str, Any]]:
        """Links to the tabs mounted on this router, the current one marked; empty when there is only one."""
        links = []
        for tab in self.tabs:
            if not tab.route:
                continue
            try:
                href = self.link(request, tab.route)
            except NoMatchFound:  # a tab router mounted on its own, without the others
                continue
            title = tab.title(self) if callable(tab.title) else tab.title
            links.append({"title": title, "href": href, "current": tab.route == current})
        return links if len(links) > 1 else []

    def policy(self) -> CalibrationUpdatePolicy:
        """The policy in force *now*: a callable is asked on every request, so an edited TOML shows at once."""
        source = self.policy_source
        try:
            policy = source if isinstance(source, CalibrationUpdatePolicy) else source()
        except CalibrationPolicyError as error:
            raise PanelError(
                503, f"The calibration policy cannot be loaded, so the panel cannot show it: {error}"
            ) from None
        if not isinstance(policy, CalibrationUpdatePolicy):
            raise PanelError(503, "The host gave the panel something that is not a calibration policy.")
        return policy

    def target(self, underlying: str) -> Target:
        """The host's live config for ``underlying``; a host failure becomes a plain 409."""
        try:
            return self.target_for(underlying)
        except CalibrationPolicyError:
            raise
        except (ValueError, LookupError, OSError) as error:
            raise PanelError(409, f"The live config for {underlying} cannot be opened: {error}") from None

    def user(self, request: Request) -> str | None:
        """Who is signed in, as the host knows it (used as the reviewer's name).

        The contract: ``current_user(request) -> str | None`` (or the host's user object, named by
        its ``username``/``name``/``email``/``id``); ``None`` means nobody is signed in.
        A host that sets ``request.state.user`` only on some requests (or never) is fine: reading
        an attribute that is not there counts as ``None``, never as a 500.
        """
        if self.current_user is None:
            return None
        try:
            name = actor_name(self.current_user(request))
        except (AttributeError, KeyError):
            return None
        return str(name) if name else None

    def link(self, request: Request, name: str, query: Mapping[str, Any] | None = None, **path_params: Any) -> str:
        """The path of one of our routes (prefix included), with an optional query string."""
        path = request.url_for(ROUTE_PREFIX + name, **path_params).path
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def render(self, request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
        token = csrf_token(request, self.signer)
        full = {
            "base_template": self.base_template,
            "active_page": "calibration",
            "csrf_field": CSRF_FIELD,
            "csrf_token": token,
            "asset": lambda file: asset_url(request, file),
            "link": lambda route, query=None, **params: self.link(request, route, query, **params),
            "tabs": lambda current: self.nav(request, current),
            "can": lambda action, domain=None: self.can(request, action, domain, context.get("domain_policy")),
            "permissions_text": lambda: self.permissions_text(context.get("domain_policy")),
            **context,
        }
        response = self.templates.TemplateResponse(request, name, full, status_code=status, headers=HTML_HEADERS)
        set_csrf_cookie(request, response, token)
        return self._warn_of_policy_edit(response)

    def policy_edit(self) -> Any:
        """The data root's policy file edited outside calibration-policy, if it was (see ``calibration_policy.tamper``)."""
        from calibration_policy.paths import POLICY_FILE_NAME
        from calibration_policy.tamper import unrecorded_edit

        path = self.data_dir / POLICY_FILE_NAME
        try:
            return unrecorded_edit(CalibrationUpdatePolicy.from_toml(path), self.data_dir) if path.is_file() else None
        except (OSError, ValueError):
            return None

    def _warn_of_policy_edit(self, response: Response) -> Response:
        """Every page of the panel opens with the warning while an outside edit of the policy is not accepted
        (put in here, once, so no page and no host template can leave it out)."""
        edit = self.policy_edit()
        body = bytes(response.body)
        opening = _PANEL_OPENING.search(body) if edit is not None else None
        if opening is None:
            return response
        warning = (
            f'\n<div class="cp-alert" role="alert" data-cp-policy-edit><p class="cp-alert-title">Policy edited '
            f"outside calibration-policy</p><p>{escape(edit.sentence())}</p></div>"
        ).encode()
        response.body = body[: opening.end()] + warning + body[opening.end() :]
        response.headers["content-length"] = str(len(response.body))
        return response

    def render_error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "calibration_policy_ui/error.html", {"status": status, "message": message}, status)
