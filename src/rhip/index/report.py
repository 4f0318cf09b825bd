"""Publishing (发布): scores.csv, ranks.csv, the Excel workbook and an offline HTML report.

The report's charts use ECharts copied from the package into the report folder (no CDN:
hospital networks are often cut off from the internet).
"""

from __future__ import annotations

import json
import math
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from rhip.index.analysis import group_statistics, parent_correlations
from rhip.index.excel import write_workbook
from rhip.index.results import IndexResult
from rhip.index.steps.prepare import year_blocks
from rhip.index.uncertainty import UncertaintyResult

ASSETS = ("echarts.min.js", "ECHARTS-LICENSE.txt", "ECHARTS-NOTICE.txt")


def publish(
    result: IndexResult,
    out: str | Path,
    ua: UncertaintyResult | None = None,
    sa: pd.DataFrame | None = None,
    note: str = "",
    ua_replications: int = 0,
) -> dict[str, Path]:
    """Write every output of a build into `out`; returns the paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores, ranks = result.write_csv(out)
    (out / "pipeline.yaml").write_text(
        yaml.safe_dump({"steps": _plain(result.log)}, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    extra = {
        "Analysis 分组统计": group_statistics(result),
        "Correlations 相关": parent_correlations(result),
    }
    if ua is not None:
        extra["Uncertainty 不确定性"] = ua.table
    if sa is not None:
        extra["Sensitivity 敏感性"] = sa
    if result.details.get("treatment"):
        extra["Treatment 异常值"] = pd.DataFrame(result.details["treatment"])
    book = write_workbook(result, out / "index.xlsx", extra)
    for name in ASSETS:
        src = resources.files("rhip.index.report_assets") / name
        with resources.as_file(src) as p:
            shutil.copyfile(p, out / name)
    html = out / "report.html"
    html.write_text(render(result, ua, sa, note, ua_replications), encoding="utf-8")
    return {"scores": scores, "ranks": ranks, "workbook": book, "report": html}


def _plain(obj):
    """YAML-safe copy of the log (numpy scalars → Python)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def chart_data(result: IndexResult, ua: UncertaintyResult | None) -> dict:
    fw = result.framework
    rows = year_blocks(result.data)[-1]
    root = result.codes.index(fw.root)
    order = rows[np.argsort(-np.nan_to_num(result.values[rows, root], nan=-np.inf), kind="stable")]
    label = lambda i: str(result.data.names[i] or result.data.units[i])  # noqa: E731
    radar_level = 2 if fw.max_level >= 3 else 1
    axes = fw.codes_at(radar_level)
    cols = [result.codes.index(c) for c in axes]
    R = result.values[np.ix_(rows, cols)]
    data = {
        "bar": {
            "names": [label(i) for i in order],
            "scores": [_num(result.values[i, root]) for i in order],
        },
        "radar": {
            "axes": [fw.nodes[c].name for c in axes],
            "median": [_num(v) for v in np.nanmedian(R, 0)],
            "max": _num(max(100.0, float(np.nanmax(R))))
            if np.nanmax(R) > 1.5
            else _num(np.nanmax(R)),
            "min": _num(min(0.0, float(np.nanmin(R)))),
        },
    }
    if result.panel:
        years = np.unique(result.data.times)
        data["trend"] = {
            "years": [f"{y:g}" for y in years],
            "median": [
                _num(np.nanmedian(result.values[result.data.times == y, root])) for y in years
            ],
        }
    data["units"] = [_unit_entry(result, i, cols, root, label(i)) for i in order]
    if ua is not None:
        t = ua.table
        data["interval"] = {
            "names": [n or c for n, c in zip(t.uName, t.uCode, strict=True)],
            "low": [_num(v) for v in t.q05_rank],
            "span": [_num(b - a) for a, b in zip(t.q05_rank, t.q95_rank, strict=True)],
            "nominal": [_num(v) for v in t.nominal_rank],
            "median": [_num(v) for v in t.median_rank],
        }
    return data


def _unit_entry(result: IndexResult, i: int, cols: list[int], root: int, name: str) -> dict:
    unit = result.data.units[i]
    entry = {
        "name": name,
        "radar": [_num(result.values[i, c]) for c in cols],
        **result.strengths_weaknesses(unit),
    }
    if result.panel:
        mine = result.data.units == unit
        by_year = dict(zip(result.data.times[mine], result.values[mine, root], strict=True))
        entry["trend"] = [_num(by_year.get(y)) for y in np.unique(result.data.times)]
    return entry


def ranking_rows(result: IndexResult, ua: UncertaintyResult | None) -> tuple[list[dict], list[str]]:
    fw = result.framework
    table = result.table()
    aspects = fw.children(fw.root)
    change = {}
    if result.panel:
        ch = result.changes()
        ch = ch[(ch["code"] == fw.root) & (ch["Time"] == result.data.times.max())]
        change = dict(zip(ch["uCode"], ch["rank_change"], strict=True))
    intervals = {}
    if ua is not None:
        intervals = {
            c: f"{a:g}–{b:g}"
            for c, a, b in zip(ua.table.uCode, ua.table.q05_rank, ua.table.q95_rank, strict=True)
        }
    rows = []
    for _, r in table.iterrows():
        ch = change.get(r["uCode"])
        rows.append(
            {
                "rank": "" if pd.isna(r["Rank"]) else int(r["Rank"]),
                "code": r["uCode"],
                "name": r["uName"],
                "score": r[fw.root],
                "aspects": [r[a] for a in aspects],
                "change": None if ch is None or pd.isna(ch) else int(ch),
                "interval": intervals.get(r["uCode"], ""),
            }
        )
    return rows, [fw.nodes[a].name for a in aspects]


def render(
    result: IndexResult,
    ua: UncertaintyResult | None = None,
    sa: pd.DataFrame | None = None,
    note: str = "",
    ua_replications: int = 0,
) -> str:
    env = Environment(
        loader=PackageLoader("rhip.index", "templates"), autoescape=select_autoescape(["html"])
    )
    fw = result.framework
    ranking, aspect_names = ranking_rows(result, ua)
    year = f"{result.data.times.max():g}" if result.panel else ""
    n_units = len(year_blocks(result.data)[-1])
    return env.get_template("report.html").render(
        title=fw.name,
        root_name=fw.nodes[fw.root].name,
        year=year,
        panel=result.panel,
        note=note,
        subtitle=f"{n_units} units · {len(fw.indicators)} indicators · {fw.max_level} levels",
        ranking=ranking,
        aspect_names=aspect_names,
        nodes=list(fw.nodes.values()),
        pipeline=yaml.safe_dump({"steps": _plain(result.log)}, allow_unicode=True, sort_keys=False),
        ua={"replications": ua_replications or len(ua.ranks)} if ua is not None else None,
        sa=None if sa is None else sa.to_dict("records"),
        data_json=json.dumps(chart_data(result, ua), ensure_ascii=False).replace("</", "<\\/"),
    )
