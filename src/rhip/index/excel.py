"""Excel workbook (工作簿): every level's scores and ranks, plus method and analysis sheets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rhip.index.results import IndexResult


def framework_table(result: IndexResult) -> pd.DataFrame:
    fw = result.framework
    return pd.DataFrame(
        [
            {
                "Level": n.level,
                "iCode": n.code,
                "iName": n.name,
                "iName_en": n.name_en,
                "Parent": n.parent,
                "Type": n.kind,
                "Direction": n.direction,
                "Weight": n.weight,
                "Weight used": result.weights.get(n.code, n.weight),
                "Unit": n.unit,
                "Target": n.target,
                "GoalpostLow": n.goalpost_low,
                "GoalpostHigh": n.goalpost_high,
                "Denominator": n.denominator,
                "Source": n.source,
            }
            for n in fw.nodes.values()
        ]
    )


def level_sheet(result: IndexResult, level: int) -> pd.DataFrame:
    codes = result.framework.codes_at(level)
    scores, ranks = result.scores(), result.ranks()
    keys = ["uCode", "Time"] if result.panel else ["uCode"]
    df = scores[keys + codes].copy()
    df.insert(1, "uName", result.data.names.astype(str))
    for c in codes:
        df[f"{c} rank"] = ranks[c]
    return df


def write_workbook(
    result: IndexResult, path: str | Path, extra: dict[str, pd.DataFrame] | None = None
) -> Path:
    """One sheet per level (scores and ranks), then ranking, framework, pipeline and extras."""
    path = Path(path)
    fw = result.framework
    names = fw.level_names or []
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        result.table().to_excel(xl, sheet_name="Ranking 排名", index=False)
        for level in range(fw.max_level, 0, -1):
            label = names[level - 1] if level - 1 < len(names) else f"Level {level}"
            level_sheet(result, level).to_excel(
                xl, sheet_name=_sheet(f"L{level} {label}"), index=False
            )
        framework_table(result).to_excel(xl, sheet_name="Framework 指标体系", index=False)
        pd.DataFrame({"step": [str(s) for s in result.log]}).to_excel(
            xl, sheet_name="Pipeline 流程", index=False
        )
        if result.panel:
            result.changes().to_excel(xl, sheet_name="Changes 年度变化", index=False)
        for name, df in (extra or {}).items():
            df.to_excel(xl, sheet_name=_sheet(name), index=False)
    return path


def _sheet(name: str) -> str:
    for ch in "[]:*?/\\":
        name = name.replace(ch, " ")
    return name[:31]
