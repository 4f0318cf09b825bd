"""Who is looking at a page (当前用户): the one dependency every page goes through.

Sign-in checks the password with ``rhip.security.service.authenticate`` and issues the platform's
own token (``rhip.security.tokens``), carried in the HttpOnly cookie ``rhip_token`` that
``rhip.api.auth`` also reads, so pages and the API share one sign-in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine

from rhip.kernel.errors import RhipError, Unauthorized
from rhip.kernel.settings import Settings
from rhip.security import service, tokens
from rhip.security.schemas import Principal

COOKIE = "rhip_token"
TTL = tokens.DEFAULT_TTL


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person as pages need them, with the principal the services take."""

    principal: Principal

    @property
    def username(self) -> str:
        return self.principal.username

    @property
    def role(self) -> str:
        return self.principal.role.value

    @property
    def institution_id(self) -> str | None:
        return self.principal.institution_id

    @property
    def patient_id(self) -> str | None:
        return self.principal.patient_id

    @property
    def display_name(self) -> str:
        return self.principal.display_name


def current_viewer(request: Request) -> Viewer | None:
    """The viewer the auth gate verified (``request.state.principal``); on the public pages,
    which the gate lets through, the same check: ``Authorization: Bearer``, else the cookie."""
    verified = getattr(request.state, "principal", None)
    if isinstance(verified, Principal):
        return Viewer(verified)
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    token = token or request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return Viewer(tokens.verify(request.app.state.settings, token))
    except RhipError:
        return None


def sign_in(
    engine: Engine, settings: Settings, username: str, password: str, ttl: dt.timedelta = TTL
) -> str | None:
    """A token for these credentials, or None when they are wrong."""
    try:
        principal = service.authenticate(engine, username, password)
    except Unauthorized:
        return None
    return tokens.issue(settings, principal, ttl)
