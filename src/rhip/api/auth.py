"""Authentication and authorisation for the HTTP interface (认证与授权).

* ``install(app)`` — the auth gate (every request but the public ones needs a valid token, else
  401 with ``WWW-Authenticate: Bearer``) and the 401 handler that adds that header.
* ``CurrentUser`` — the signed-in ``Principal``, from ``Authorization: Bearer`` or, for pages,
  the HttpOnly cookie ``rhip_token``; ``require_roles(...)`` and ``permit(action)`` narrow it.
* ``PurposeOfUse`` — the ``X-Purpose-Of-Use`` header (HL7 v3 PurposeOfUse); unknown → 400.
* ``audited_read(...)`` / ``audited_search(...)`` — policy decision, the read and its audit
  event(s) in one place, for the routers that serve clinical or personal data (调阅): every read,
  allowed or refused, is logged. ``lookup_decision`` is the rule for MPI lookups (Patient).

Pages (``/web/…``) share the gate: without a valid token they are redirected (303) to the login
page with ``next`` set, never answered with the API's 401 JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Connection

from rhip import audit
from rhip.api.fhir.common import FHIRResponse
from rhip.kernel.errors import Forbidden, NotFound, RhipError, Unauthorized
from rhip.kernel.settings import Settings
from rhip.security import purpose as pou
from rhip.security.logmask import mask_text
from rhip.security.policy import Action, Decision, Relationship, decide
from rhip.security.schemas import Principal, Role
from rhip.security.service import care_relationship
from rhip.security.tokens import DEFAULT_TTL, verify

COOKIE = "rhip_token"
TOKEN_URL = "/api/auth/token"
PAGES = "/web"  # server-rendered pages: sent to the login page instead of a 401
LOGIN_PAGE = f"{PAGES}/login"
PUBLIC_PATHS = frozenset(
    {
        "/fhir/metadata",
        "/health",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/login",
        LOGIN_PAGE,
        f"{PAGES}/logout",
        "/",
        TOKEN_URL,
        "/api/auth/logout",
        "/favicon.ico",
    }
)  # fmt: skip  ("/" only redirects: to the viewer's home page or the login page)
PUBLIC_PREFIXES = ("/static/", f"{PAGES}/static/")
CHALLENGE = 'Bearer realm="rhip"'

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)  # for the OpenAPI scheme


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_page(path: str) -> bool:
    return path == PAGES or path.startswith(f"{PAGES}/")


def to_login(path: str, query: str) -> RedirectResponse:
    """The login page, coming back to ``path?query`` after sign-in (as ``rhip.web`` does)."""
    target = quote(path + (f"?{query}" if query else ""))
    return RedirectResponse(f"{LOGIN_PAGE}?next={target}", status_code=303)


def token_from(authorization: str | None, cookie: str | None) -> str | None:
    """The bearer token of the Authorization header, else of the cookie."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return value.strip()
    return cookie or None


def _principal(settings: Settings, authorization: str | None, cookie: str | None) -> Principal:
    token = token_from(authorization, cookie)
    if token is None:
        raise Unauthorized("sign in first: this request needs an access token")
    return verify(settings, token)


def _unauthorized(exc: Unauthorized) -> FHIRResponse:
    challenge = CHALLENGE  # RFC 6750 §3: no error code when no token was sent
    if exc.message.startswith("access token"):
        challenge += ', error="invalid_token"'
    elif exc.message.startswith("Authorization"):
        challenge += ', error="invalid_request"'
    return FHIRResponse(
        exc.to_operation_outcome(), status_code=401, headers={"WWW-Authenticate": challenge}
    )


class AuthGate:
    """ASGI middleware: requests to non-public paths need a valid token (deny by default, so a
    new router is protected without remembering to). The principal goes to ``request.state``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = _principal(
                scope["app"].state.settings,
                request.headers.get("authorization"),
                request.cookies.get(COOKIE),
            )
        except Unauthorized as exc:
            if is_page(scope["path"]):
                answer = to_login(scope["path"], scope.get("query_string", b"").decode("latin-1"))
            else:
                answer = _unauthorized(exc)
            await answer(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Turn authentication on for ``app``: the gate and the 401 handler."""

    async def on_unauthorized(_request: Request, exc: Exception) -> FHIRResponse:
        assert isinstance(exc, Unauthorized)
        return _unauthorized(exc)

    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_middleware(AuthGate)


def current_user(request: Request, _token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    found = getattr(request.state, "principal", None)
    if isinstance(found, Principal):
        return found
    return _principal(
        request.app.state.settings,
        request.headers.get("authorization"),
        request.cookies.get(COOKIE),
    )


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_roles(*roles: Role | str) -> Callable[[Principal], Principal]:
    """Dependency: the principal, when its role is one of ``roles``; 403 otherwise."""
    wanted = frozenset(Role(r) for r in roles)
    names = " or ".join(sorted(r.value for r in wanted))

    def dependency(principal: CurrentUser) -> Principal:
        if principal.role not in wanted:
            raise Forbidden(f"this endpoint is for {names} accounts")
        return principal

    return dependency


require_role = require_roles


def permit(action: Action) -> Callable[[Principal], Principal]:
    """Dependency: the principal, when the policy lets its role do ``action`` at all."""

    def dependency(principal: CurrentUser) -> Principal:
        decision = decide(principal, action, action.value, None, Relationship.NONE)
        if not decision.allowed:
            raise refusal(decision)
        return principal

    return dependency


def purpose_of_use(
    value: Annotated[str | None, Header(alias=pou.HEADER, include_in_schema=True)] = None,
) -> str | None:
    return pou.parse(value)


PurposeOfUse = Annotated[str | None, Depends(purpose_of_use)]
OperatorUser = Annotated[Principal, Depends(require_roles(Role.OPERATOR))]


def refusal(decision: Decision) -> RhipError:
    """The error for a refused decision: 404 where existence must not leak, else 403."""
    if decision.status == 404:
        return NotFound(decision.reason)
    return Forbidden(decision.reason)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_key(request: Request) -> bytes:
    key = getattr(request.app.state, "audit_key", None)
    if key is None:
        key = request.app.state.audit_key = audit.chain_key(request.app.state.settings.secret_key)
    return key


def access_event(
    request: Request, principal: Principal, purpose: str | None, **fields
) -> audit.AuditEventIn:
    """An audit event for this request by ``principal``; ``fields`` add resource, patient …"""
    query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return audit.AuditEventIn(
        username=principal.username,
        user_id=principal.user_id,
        agent_name=principal.display_name or None,
        role=principal.role.value,
        institution_id=principal.institution_id,
        purpose=purpose,
        query=mask_text(query)[:2000],
        client_address=client_address(request),
        **fields,
    )


Judge = Callable[[Relationship], Decision]  # the decision for a relationship to one patient


def lookup_decision(principal: Principal, purpose: str | None, relationship: Relationship):
    """MPI lookups (Patient read/search, ``$ihe-pix``, ``$match``): the policy's
    ``LOOKUP_PATIENT`` rules (operators; doctors with a purpose of use; a patient their own
    record; never integrators)."""
    return decide(principal, Action.LOOKUP_PATIENT, "Patient", purpose, relationship)


def record_access(
    request: Request,
    principal: Principal,
    purpose: str | None,
    decision: Decision,
    *,
    resource: str,
    subtype: str,
    patient_ids: Sequence[str | None],
    conn: Connection | None = None,
    status: int | None = None,
    reason: str | None = None,
) -> None:
    """Append one audit event per patient (one without a patient when there is none): in
    ``conn``'s transaction when given, else in a transaction of its own."""
    if decision.allowed and status is None:
        outcome, status = audit.SUCCESS, 200
    else:
        status = status or decision.status
        outcome = audit.MINOR_FAILURE if status < 500 else audit.SERIOUS_FAILURE
    events = [
        access_event(
            request,
            principal,
            purpose,
            resource=resource,
            subtype=subtype,
            patient_id=pid,
            outcome=outcome,
            status=status,
            reason=reason or decision.reason,
            flagged=decision.flagged,
        )
        for pid in (list(patient_ids) or [None])
    ]
    if conn is not None:
        audit.append(conn, audit_key(request), events)
    else:
        audit.record(request.app.state.engine, audit_key(request), events)


@contextmanager
def audited_search(
    request: Request,
    principal: Principal,
    purpose: str | None,
    *,
    patient_ids: Sequence[str],
    resource: str,
    subtype: str = "search",
    judge: Judge | None = None,
) -> Iterator[Connection]:
    """``audited_read`` for a read that spans ``patient_ids`` (a search): every one of them must
    be allowed; one event per patient. ``judge`` replaces the clinical-read policy decision.

    Without any patient the decision is taken for the role and purpose alone (a doctor as if in
    a care relationship; a patient gets the 404 they get for someone else's record)."""
    judge = judge or (lambda rel: decide(principal, Action.READ_CLINICAL, resource, purpose, rel))
    engine = request.app.state.engine
    with engine.connect() as conn:
        relationships = [care_relationship(conn, principal, pid) for pid in patient_ids]
    if not patient_ids:
        none = Relationship.CARE if principal.role is Role.DOCTOR else Relationship.NONE
        relationships = [none]
    decisions = [judge(rel) for rel in relationships]
    refused = next((d for d in decisions if not d.allowed), None)
    flagged = any(d.flagged for d in decisions)
    decision = refused or Decision(True, 200, decisions[0].reason, flagged)

    def log(status: int | None = None, reason: str | None = None, conn=None) -> None:
        record_access(request, principal, purpose, decision, resource=resource, subtype=subtype,
                      patient_ids=patient_ids, conn=conn, status=status, reason=reason)  # fmt: skip

    if refused is not None:
        log()
        raise refusal(refused)
    try:
        with engine.begin() as conn:
            yield conn
            log(conn=conn)
    except RhipError as exc:
        log(exc.status, exc.message[:300])
        raise
    except Exception:
        log(500, "internal error")
        raise


@contextmanager
def audited_read(
    request: Request,
    principal: Principal,
    purpose: str | None,
    *,
    patient_id: str,
    resource: str,
    subtype: str = "read",
    action: Action = Action.READ_CLINICAL,
    judge: Judge | None = None,
) -> Iterator[Connection]:
    """Decide, then read in the yielded transaction; the audit event is appended last in it.

    A refusal is recorded in a transaction of its own and raised (403/404); an error raised by
    the read is recorded as a failed access and re-raised.

        with audited_read(request, user, purpose, patient_id=pid, resource="DiagnosticReport",
                          subtype="search") as conn:
            rows = reports_for(conn, pid)
    """
    judge = judge or (lambda rel: decide(principal, action, resource, purpose, rel))
    with audited_search(request, principal, purpose, patient_ids=[patient_id],
                        resource=resource, subtype=subtype, judge=judge) as conn:  # fmt: skip
        yield conn


def set_token_cookie(response: Response, settings: Settings, token: str, ttl=DEFAULT_TTL) -> None:
    """The page session: the token in an HttpOnly (no JS access), SameSite=Lax cookie; Secure
    outside dev and test. Both ``?cookie=true`` and the login page set it here.

    Lax, not Strict: a link into rhip from another site (a hospital system, a mail) must arrive
    signed in rather than bounce through the login page; Lax still withholds the cookie from
    cross-site POSTs and sub-requests, and every state change here is a POST (CSRF)."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ttl / dt.timedelta(seconds=1)),
        httponly=True,
        samesite="lax",
        secure=settings.env not in ("dev", "test"),
        path="/",
    )
