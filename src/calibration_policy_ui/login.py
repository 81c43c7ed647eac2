"""Sign-in for ``calibration-policy serve`` (and any host that wants it): who a request comes from.

Three ways, in this order of trust:

* a **trusted reverse proxy** that has signed the person in puts their name in a header
  (``--trusted-proxy-header X-Forwarded-User``); the header counts only on a connection from one of the
  configured proxy addresses (``--trusted-proxy 127.0.0.1``), never from anyone else;
* a **users file** (``calibration-policy users add NAME``): HTTP Basic, the password checked against the
  argon2 hash, and the name signed in with is who acts;
* a **single user** with a shared password (or none, on this computer only): everyone who knows it is that
  one user, so the panel cannot tell two people apart, and four-eyes settings refuse to start in it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.users import UsersFile, check_user_name

LOCAL_USER = "local trader"


class SignInSetupError(CalibrationPolicyError):
    """The sign-in cannot work as configured (four-eyes with one shared login, a proxy header without proxies)."""


@dataclass(frozen=True)
class SignIn:
    users: UsersFile | None = None
    proxy_header: str | None = None
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    single_user: str = LOCAL_USER
    password: str | None = None  # the single user's shared password (None: no password, this computer only)
    realm: str = "calibration"

    @property
    def single(self) -> bool:
        """Whether everyone who signs in is one and the same user."""
        return self.users is None and self.proxy_header is None

    def describe(self) -> str:
        if self.proxy_header:
            where = ", ".join(sorted(self.trusted_proxies))
            extra = f", else the users file {self.users.path}" if self.users else ""
            return f"the {self.proxy_header} header from {where}{extra}"
        if self.users is not None:
            return f"the users file {self.users.path}"
        return f"one shared {'password' if self.password else 'local sign-in'}: everyone is {self.single_user!r}"

    def check_policy(self, policy: Any) -> None:
        """Refuse four-eyes settings when the panel cannot tell two people apart."""
        if self.proxy_header and not self.trusted_proxies:
            raise SignInSetupError(
                f"--trusted-proxy-header {self.proxy_header} needs --trusted-proxy ADDRESS: without it anyone could "
                "send the header and be whoever they name."
            )
        if not self.single:
            return
        four_eyes = [
            name
            for name, on in (
                ("require_distinct_approver = true", getattr(policy, "require_distinct_approver", False)),
                ("force_requires_approval = true", getattr(policy, "force_requires_approval", False)),
                (
                    f"required_approvals = {getattr(policy, 'required_approvals', 1)}",
                    getattr(policy, "required_approvals", 1) > 1,
                ),
            )
            if on
        ]
        if four_eyes:
            raise SignInSetupError(
                f"The policy asks for a second person ({', '.join(four_eyes)}), but serve signs everyone in as the "
                f"single user {self.single_user!r}, so one person could approve their own change: add people with "
                "`calibration-policy users add NAME --role ROLE` (or put serve behind a signing-in proxy with "
                "--trusted-proxy-header), then start again."
            )

    def dependency(self) -> Callable[..., str]:
        """The FastAPI dependency: sets ``request.state.user`` to who signed in, or answers 401."""
        basic = HTTPBasic(auto_error=False)

        def require_login(request: Request, credentials: HTTPBasicCredentials | None = Depends(basic)) -> str:
            user = self.user_of(request, credentials)
            if user is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "Sign in to use the app.",
                    headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'},
                )
            request.state.user = user
            return user

        return require_login

    def middleware(self) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
        """The same sign-in as an HTTP middleware (what ``serve``'s own app uses): who is there is known before
        any route reads its body, so the panel's permission check refuses a request before a byte of it is read
        (:mod:`calibration_policy_ui.limits`); a route dependency runs only after the body is read."""
        basic = HTTPBasic(auto_error=False)

        async def sign_in(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            try:
                credentials = await basic(request)
            except HTTPException:  # a malformed Authorization header: nobody signed in
                credentials = None
            user = self.user_of(request, credentials)
            if user is None:
                return JSONResponse(
                    {"detail": "Sign in to use the app."},
                    status.HTTP_401_UNAUTHORIZED,
                    headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'},
                )
            request.state.user = user
            return await call_next(request)

        return sign_in

    def user_of(self, request: Request, credentials: HTTPBasicCredentials | None) -> str | None:
        if self.proxy_header:
            named = request.headers.get(self.proxy_header)
            peer = request.client.host if request.client else None
            if named and peer in self.trusted_proxies:
                try:
                    return check_user_name(named.strip())
                except CalibrationPolicyError:
                    return None
        if self.users is not None:
            if credentials is None:
                return None
            found = self.users.verify(credentials.username, credentials.password)
            return found.name if found else None
        if self.proxy_header:
            return None  # only the proxy signs people in
        if self.password is None:
            return self.single_user
        if credentials is not None and secrets.compare_digest(credentials.password.encode(), self.password.encode()):
            return self.single_user  # the name typed is ignored: one shared password is one user
        return None
