"""rhip.web — server-rendered pages (网页端): overview, institutions, doctor workspace, patient
view, development index. Jinja2 templates, ECharts and every other asset served by rhip itself.

Mount with ``app.include_router(rhip.web.router)``; pages live under ``/web`` and ``/``
redirects to the viewer's home page.
"""

from fastapi import APIRouter

from rhip.web import (
    assets,
    routes_clinical,
    routes_index,
    routes_main,
    routes_recognition,
    routes_registry,
)

router = APIRouter(include_in_schema=False)
for _module in (assets, routes_main, routes_registry, routes_clinical, routes_recognition,
                routes_index):  # fmt: skip
    router.include_router(_module.router)
router.add_api_route("/web/{rest:path}", routes_main.not_found, methods=["GET"])

__all__ = ["router"]
