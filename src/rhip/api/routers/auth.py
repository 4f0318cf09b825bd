"""``POST /api/auth/token``: sign in with the OAuth2 password grant (RFC 6749 §4.3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import OAuth2PasswordRequestForm

from rhip.api.auth import COOKIE, CurrentUser, set_token_cookie
from rhip.api.deps import EngineDep, SettingsDep
from rhip.security import service, tokens
from rhip.security.schemas import TokenResponse

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token")
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    engine: EngineDep,
    settings: SettingsDep,
    response: Response,
    cookie: bool = Query(False, description="also set the page session cookie rhip_token"),
) -> TokenResponse:
    """An access token for a username and password: ``Authorization: Bearer <access_token>``
    on every API and FHIR call. Wrong credentials: 401, without saying which was wrong."""
    principal = service.authenticate(engine, form.username, form.password)
    ttl = tokens.DEFAULT_TTL
    access = tokens.issue(settings, principal, ttl)
    if cookie:
        set_token_cookie(response, settings, access, ttl)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return TokenResponse(access_token=access, expires_in=int(ttl.total_seconds()))


@router.get("/me")
def me(principal: CurrentUser) -> dict[str, Any]:
    """Who the token belongs to."""
    return {
        "user_id": principal.user_id,
        "username": principal.username,
        "role": principal.role.value,
        "institution_id": principal.institution_id,
        "patient_id": principal.patient_id,
        "display_name": principal.display_name,
    }


@router.post("/logout", status_code=204)
def logout(response: Response) -> Response:
    """End the page session (drops the cookie; a bearer token simply expires)."""
    response.delete_cookie(COOKIE, path="/")
    response.status_code = 204
    return response
