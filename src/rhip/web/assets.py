"""Static assets (静态资源) served by rhip itself — no CDN: hospital networks are often offline.

ECharts is the copy vendored once in ``rhip.index.report_assets`` (Apache-2.0, with its licence
and notice files), served from here rather than vendored twice.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

router = APIRouter(prefix="/web/static", include_in_schema=False)

# name → (package, media type)
ASSETS: dict[str, tuple[str, str]] = {
    "rhip.css": ("rhip.web.static", "text/css; charset=utf-8"),
    "charts.js": ("rhip.web.static", "text/javascript; charset=utf-8"),
    "echarts.min.js": ("rhip.index.report_assets", "text/javascript; charset=utf-8"),
    "ECHARTS-LICENSE.txt": ("rhip.index.report_assets", "text/plain; charset=utf-8"),
    "ECHARTS-NOTICE.txt": ("rhip.index.report_assets", "text/plain; charset=utf-8"),
}
CACHE = "public, max-age=86400"


def asset_path(name: str) -> Path:
    package, _ = ASSETS[name]
    return Path(str(resources.files(package) / name))


@router.get("/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        asset_path(name), media_type=ASSETS[name][1], headers={"Cache-Control": CACHE}
    )
