"""Sign-in, sign-out and the operator's overview (运行总览, the wall-display page)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from rhip.api.auth import set_token_cookie
from rhip.metrics import Overview, overview
from rhip.web import i18n
from rhip.web.render import PREFIX, error_page, home_of, render, view
from rhip.web.session import COOKIE, TTL, current_viewer, sign_in

router = APIRouter(include_in_schema=False)


@router.get("/")
def root(request: Request) -> Response:
    """The start: the viewer's home page, or the login page."""
    return RedirectResponse(home_of(current_viewer(request)), status_code=303)


@router.get("/login")
def login_alias(request: Request) -> Response:
    """``/login`` (public, as the API's docs name it) is the page sign-in."""
    query = request.url.query
    return RedirectResponse(f"{PREFIX}/login" + (f"?{query}" if query else ""), status_code=303)


@router.get(f"{PREFIX}/login")
def login_form(request: Request, next: str = "") -> Response:
    settings = request.app.state.settings
    return render(
        request, "login.html", next=next, failed=False, dev=settings.env in ("dev", "test")
    )


@router.post(f"{PREFIX}/login")
def login(
    request: Request, username: str = Form(...), password: str = Form(...), next: str = Form("")
) -> Response:
    settings = request.app.state.settings
    token = sign_in(request.app.state.engine, settings, username.strip(), password)
    if token is None:
        dev = settings.env in ("dev", "test")
        return render(request, "login.html", status=401, next=next, failed=True, dev=dev)
    # only local paths: an open redirect would let a link send users elsewhere after sign-in
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    set_token_cookie(response, settings, token, TTL)  # the API's cookie: one session, one rule
    return response


@router.post(f"{PREFIX}/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get(f"{PREFIX}/overview")
@view(["operator"])
def overview_page(request: Request, days: int = 30, wall: bool = False) -> Response:
    days = min(max(days, 7), 366)
    ov = overview(request.app.state.engine, days=days)
    t = i18n.translator(i18n.pick_lang(request))
    return render(request, "overview.html", ov=ov, days=days, wall=wall, charts=_charts(ov, t))


def _charts(ov: Overview, t) -> dict:
    worst = ov.quality[:15]
    rates = [round(q.rate, 1) for q in worst]
    return {
        "daily": {
            "days": [d.day.strftime("%m-%d") for d in ov.daily],
            "lab": [d.lab for d in ov.daily],
            "exam": [d.exam for d in ov.daily],
            "views": [d.views for d in ov.daily] if ov.views_available else None,
            "labels": {"lab": t("ov.lab"), "exam": t("ov.exam"), "views": t("ov.views")},
        },
        "types": {
            "names": [t("type." + r.type) for r in ov.by_type],
            "total": [r.total for r in ov.by_type],
            "connected": [r.connected for r in ov.by_type],
            "labels": {"total": t("ov.total_short"), "connected": t("ov.connected_short")},
        },
        "quality": {
            "names": [q.name for q in worst],
            "rates": rates,
            "min": max(0, int(min(rates, default=0)) // 10 * 10),
        },
    }


def not_found(request: Request, rest: str) -> Response:
    """Any other path under /web: an HTML 404, not the API's JSON."""
    return error_page(request, 404)
