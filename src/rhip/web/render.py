"""Rendering pages (页面渲染): the Jinja2 environment, role guard and HTML error pages.

``@view(roles)`` wraps a page handler: no sign-in → the login page; wrong role → 403 page; a
``NotFound`` from a service, or a malformed id in the URL, → 404 page. Pages never answer with
the API's JSON errors.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from rhip.kernel.clock import CST
from rhip.kernel.errors import InvalidInput, MalformedInput, NotFound
from rhip.web import i18n
from rhip.web.clinical import ABNORMAL
from rhip.web.session import Viewer, current_viewer

PREFIX = "/web"
# role → navigation entries (message key, path)
NAV: dict[str, list[tuple[str, str]]] = {
    "operator": [
        ("nav.overview", "/web/overview"),
        ("nav.institutions", "/web/institutions"),
        ("nav.index", "/web/index"),
    ],
    "doctor": [("nav.doctor", "/web/doctor"), ("nav.index", "/web/index")],
    "patient": [("nav.me", "/web/me")],
    "integrator": [("nav.institutions", "/web/institutions")],
}
HOME = {"operator": "/web/overview", "doctor": "/web/doctor", "patient": "/web/me"}


class PageError(Exception):
    def __init__(self, status: int):
        self.status = status


def _number(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _json(value) -> Markup:
    return Markup(json.dumps(value, ensure_ascii=False, default=str).replace("</", "<\\/"))


ENV = Environment(loader=PackageLoader("rhip.web", "templates"), autoescape=select_autoescape())
ENV.filters["num"] = _number
ENV.filters["json"] = _json
ENV.globals["cst"] = CST
ENV.globals["abnormal_flags"] = ABNORMAL


def lang_link(request: Request, lang: str) -> str:
    """This page in ``lang``: the same query (purpose, item …) with ``lang`` replaced."""
    query = {k: v for k, v in request.query_params.items() if k != "lang"} | {"lang": lang}
    return "?" + urlencode(query)


def home_of(viewer: Viewer | None) -> str:
    if viewer is None:
        return f"{PREFIX}/login"
    return HOME.get(viewer.role, f"{PREFIX}/institutions")


def render(
    request: Request, template: str, status: int = 200, viewer: Viewer | None = None, **ctx
) -> HTMLResponse:
    lang = i18n.pick_lang(request)
    viewer = viewer or getattr(request.state, "viewer", None)
    html = ENV.get_template(template).render(
        request=request,
        t=i18n.translator(lang),
        lang=lang,
        viewer=viewer,
        nav=NAV.get(viewer.role, []) if viewer else [],
        path=request.url.path,
        lang_link=lang_link(request, "en" if lang == "zh" else "zh"),
        **ctx,
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def error_page(request: Request, status: int) -> HTMLResponse:
    return render(request, "error.html", status=status, code=status)


def view(roles: Iterable[str]) -> Callable:
    """Guard a page handler (which takes ``request``) by the viewer's role."""
    allowed = frozenset(roles)

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def page(*args, **kwargs) -> Response:
            request: Request = kwargs["request"]
            viewer = current_viewer(request)
            if viewer is None:
                target = quote(
                    str(request.url.path) + ("?" + request.url.query if request.url.query else "")
                )
                return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
            request.state.viewer = viewer
            if viewer.role not in allowed:
                return error_page(request, 403)
            try:
                return handler(*args, **kwargs)
            except PageError as exc:
                return error_page(request, exc.status)
            except (NotFound, InvalidInput, MalformedInput):
                return error_page(request, 404)  # a bad id or cursor in a URL: no such record

        return page

    return wrap
