"""The development index page (卫生健康信息化发展指数): ranking with year-on-year change, bar and
radar charts, rank intervals, the workbook download, and this platform's live figures beside the
survey indicators of the model city."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from rhip.metrics import platform_indicators
from rhip.web import i18n, indexcache
from rhip.web.render import PREFIX, render, view

router = APIRouter(include_in_schema=False)
ROLES = ["operator", "doctor"]


@router.get(f"{PREFIX}/index")
@view(ROLES)
def index_page(request: Request, city: str = indexcache.MODEL_CITY) -> Response:
    b = indexcache.built(request.app.state.settings.var_dir)
    live = platform_indicators(request.app.state.engine)
    t = i18n.translator(i18n.pick_lang(request))
    charts = dict(b.charts)
    names = [u["name"] for u in charts["units"]]
    codes = [r["code"] for r in b.ranking]
    selected = codes.index(city) if city in codes else 0
    charts["radar"] = charts["radar"] | {
        "units": charts["units"], "selected": selected, "medianLabel": t("idx.median")
    }  # fmt: skip
    fw = b.result.framework
    rows = [
        {
            "key": key,
            "value": value,
            "code": code,
            "indicator": fw.nodes[code].name if code else "",
            "survey": b.survey.get(code) if code else None,
        }
        for key, value, code in live.items()
    ]
    return render(
        request, "index.html", ranking=b.ranking, aspect_names=b.aspect_names, charts=charts,
        names=names, selected=selected, live=live, live_rows=rows,
        replications=indexcache.REPLICATIONS, year=f"{b.result.data.times.max():g}",
    )  # fmt: skip


@router.get(f"{PREFIX}/index/workbook.xlsx")
@view(ROLES)
def workbook(request: Request) -> Response:
    b = indexcache.built(request.app.state.settings.var_dir)
    return FileResponse(
        b.workbook,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="rhip-index.xlsx",
    )
