"""Load frameworks (COINr `iMeta` tables or YAML) and unit data (COINr `iData`, CSV or Excel)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rhip.index.errors import IndexInputError
from rhip.index.framework import (
    AGGREGATE,
    DENOMINATOR,
    GROUP,
    INDICATOR,
    Framework,
    Node,
    build_framework,
)
from rhip.index.tables import Table, is_missing, read_table, to_float, to_text

# COINr iMeta column names, with the optional extras rhip understands.
META_ALIASES = {
    "GoalpostLow": ("GoalpostLow", "Goalpost_lo", "Low", "goalpost_low"),
    "GoalpostHigh": ("GoalpostHigh", "Goalpost_hi", "High", "goalpost_high"),
}
COINR_DEFAULT_PIPELINE = {
    "steps": [
        {"step": "normalise", "method": "minmax", "lower": 0, "upper": 100},
        {"step": "aggregate", "method": "arithmetic"},
    ]
}


@dataclass
class Dataset:
    """Unit data: one row per unit (and year), indicator values in framework order."""

    units: np.ndarray  # uCode per row
    names: np.ndarray  # uName per row ("" if absent)
    times: np.ndarray | None  # Time per row, or None for a single cross-section
    values: np.ndarray  # rows × indicators, float, NaN = missing
    indicators: list[str]
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    denominators: dict[str, np.ndarray] = field(default_factory=dict)
    file: str = ""
    rows: np.ndarray | None = None  # file row number per row

    @property
    def n(self) -> int:
        return len(self.units)

    def take(self, keep: np.ndarray) -> Dataset:
        """A copy with only the rows where `keep` is True."""
        return Dataset(
            units=self.units[keep],
            names=self.names[keep],
            times=None if self.times is None else self.times[keep],
            values=self.values[keep],
            indicators=list(self.indicators),
            groups={k: v[keep] for k, v in self.groups.items()},
            denominators={k: v[keep] for k, v in self.denominators.items()},
            file=self.file,
            rows=None if self.rows is None else self.rows[keep],
        )


def read_framework(path: str | Path) -> Framework:
    """Read a framework from YAML or a COINr `iMeta` table (CSV/Excel)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return framework_from_yaml(path)
    return framework_from_imeta(read_table(path, prefer=("iMeta", "Meta", "Framework")))


def framework_from_imeta(table: Table) -> Framework:
    """Build a framework from COINr's `iMeta` columns (Level, iCode, iName, Direction, ...)."""
    for required in ("iCode", "Parent", "Type"):
        if not table.has(required):
            raise IndexInputError(
                "required iMeta column is missing", file=table.file, row=1, column=required
            )
    nodes, groups, denoms = [], [], []
    for i, raw in enumerate(table.rows):
        cell = dict(zip(table.header, raw, strict=True))
        kind = to_text(cell.get("Type"))
        code = to_text(cell.get("iCode"))
        if kind == GROUP:
            groups.append(code)
        elif kind == DENOMINATOR:
            denoms.append(code)
        elif kind in (INDICATOR, AGGREGATE):
            nodes.append(_imeta_node(table, i, cell, kind, code))
        elif kind not in ("Other", ""):
            raise IndexInputError(
                f"unknown Type {kind!r} "
                "(expected Indicator, Aggregate, Group, Denominator or Other)",
                file=table.file,
                row=table.row_number(i),
                column="Type",
            )
    fw = build_framework(
        nodes,
        file=table.file,
        groups=groups,
        denominators=denoms,
        default_pipeline=COINR_DEFAULT_PIPELINE,
    )
    _check_given_levels(table, fw)
    return fw


def _imeta_node(table: Table, i: int, cell: dict[str, Any], kind: str, code: str) -> Node:
    def num(col: str, default: float | None) -> float | None:
        if col not in cell or is_missing(cell[col]):
            return default
        return to_float(cell[col], table=table, i=i, column=col)

    def alias(name: str) -> float | None:
        col = next((c for c in META_ALIASES[name] if c in cell), None)
        return None if col is None else num(col, None)

    direction = num("Direction", 1.0)
    denominator = to_text(cell.get("Denominator")) or None
    return Node(
        code=code,
        name=to_text(cell.get("iName")) or code,
        kind=kind,
        parent=to_text(cell.get("Parent")) or None,
        direction=int(direction) if direction is not None and direction.is_integer() else direction,
        weight=num("Weight", 1.0),
        unit=to_text(cell.get("Unit")),
        target=num("Target", None),
        goalpost_low=alias("GoalpostLow"),
        goalpost_high=alias("GoalpostHigh"),
        denominator=denominator if kind == INDICATOR else None,
        scale_factor=num("ScaleFactor", 1.0),
        name_en=to_text(cell.get("iName_en")),
        source=to_text(cell.get("Source")),
        row=table.row_number(i),
    )


def _check_given_levels(table: Table, fw: Framework) -> None:
    if not table.has("Level"):
        return
    j = table.column("Level")
    codes = table.column("iCode")
    for i, raw in enumerate(table.rows):
        code = to_text(raw[codes])
        if code in fw.nodes and not is_missing(raw[j]):
            given = to_float(raw[j], table=table, i=i, column="Level")
            if given != fw.nodes[code].level:
                raise IndexInputError(
                    f"Level {given:g} of {code!r} does not match its place in the tree "
                    f"(level {fw.nodes[code].level} counted from the indicators)",
                    file=table.file,
                    row=table.row_number(i),
                    column="Level",
                )


def framework_from_yaml(path: Path) -> Framework:
    """Read the YAML form: a nested `tree` (or a flat `nodes` list in iMeta shape)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise IndexInputError(f"invalid YAML: {exc}", file=str(path)) from None
    if not isinstance(doc, dict) or not ("tree" in doc or "nodes" in doc):
        raise IndexInputError("a framework YAML needs a 'tree' or 'nodes' key", file=str(path))
    file = str(path)
    nodes: list[Node] = []
    if "tree" in doc:
        roots = doc["tree"] if isinstance(doc["tree"], list) else [doc["tree"]]
        for k, root in enumerate(roots):
            _walk_tree(root, None, nodes, file, f"tree[{k}]")
    else:
        for i, item in enumerate(doc["nodes"]):
            nodes.append(_yaml_node(item, item.get("parent"), file, f"nodes[{i}]"))
    return build_framework(
        nodes,
        file=file,
        name=str(doc.get("name", "Index")),
        level_names=[str(x) for x in doc.get("levels", [])],
        groups=[str(g) for g in doc.get("groups", [])],
        denominators=[
            str(d.get("code", d)) if isinstance(d, dict) else str(d)
            for d in doc.get("denominators", [])
        ],
        default_pipeline=doc.get("pipeline"),
    )


def _walk_tree(item: Any, parent: str | None, out: list[Node], file: str, where: str) -> None:
    if not isinstance(item, dict):
        raise IndexInputError(
            "each tree entry must be a mapping with a 'code'", file=file, row=where
        )
    out.append(_yaml_node(item, parent, file, where))
    for k, child in enumerate(item.get("children") or []):
        _walk_tree(child, str(item.get("code")), out, file, f"{where}/{item.get('code')}[{k}]")


def _yaml_node(item: dict[str, Any], parent: str | None, file: str, where: str) -> Node:
    def num(key: str, default: float | None) -> float | None:
        value = item.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise IndexInputError(
                f"{key} must be a number, got {value!r}", file=file, row=where, column=key
            )
        return float(value)

    code = str(item.get("code") or "")
    kind = AGGREGATE if item.get("children") or item.get("type") == AGGREGATE else INDICATOR
    posts = item.get("goalposts") or [None, None]
    if not isinstance(posts, list) or len(posts) != 2:
        raise IndexInputError(
            "goalposts must be [low, high]", file=file, row=where, column="goalposts"
        )
    direction = num("direction", 1)
    return Node(
        code=code,
        name=str(item.get("name") or code),
        kind=kind,
        parent=None if parent is None else str(parent),
        direction=int(direction) if float(direction).is_integer() else direction,
        weight=num("weight", 1.0),
        unit=str(item.get("unit") or ""),
        target=num("target", None),
        goalpost_low=None if posts[0] is None else float(posts[0]),
        goalpost_high=None if posts[1] is None else float(posts[1]),
        denominator=item.get("denominator"),
        scale_factor=num("scale_factor", 1.0),
        name_en=str(item.get("name_en") or ""),
        source=str(item.get("source") or ""),
        row=where,
    )


def read_data(path: str | Path, framework: Framework) -> Dataset:
    """Read unit data in COINr `iData` shape.

    Columns: uCode, [uName], [Time], *_group columns, denominators, then one per indicator.
    """
    return dataset_from_table(read_table(path, prefer=("iData", "Data")), framework)


def dataset_from_table(table: Table, fw: Framework) -> Dataset:
    if not table.has("uCode"):
        raise IndexInputError("required column is missing", file=table.file, row=1, column="uCode")
    for code in fw.indicators:
        if not table.has(code):
            raise IndexInputError(
                f"indicator {code!r} of the framework has no column in the data",
                file=table.file,
                row=1,
                column=code,
            )
    units = _codes(table)
    names = np.array(
        [to_text(r[table.column("uName")]) if table.has("uName") else "" for r in table.rows],
        dtype=object,
    )
    times = _numbers(table, "Time") if table.has("Time") else None
    _check_duplicates(table, units, times)
    values = (
        np.column_stack([_numbers(table, c) for c in fw.indicators])
        if fw.indicators
        else np.empty((len(units), 0))
    )
    group_cols = [c for c in table.header if c in fw.groups or c.endswith("_group")]
    groups = {
        c: np.array([to_text(r[table.column(c)]) for r in table.rows], dtype=object)
        for c in group_cols
    }
    denom_cols = {n.denominator for n in fw.nodes.values() if n.denominator} | set(fw.denominators)
    denominators = {c: _numbers(table, c) for c in sorted(denom_cols) if table.has(c)}
    _check_empty_units(table, units, values)
    return Dataset(
        units,
        names,
        times,
        values,
        fw.indicators,
        groups,
        denominators,
        table.file,
        np.arange(len(units)) + table.first_row,
    )


def _codes(table: Table) -> np.ndarray:
    j = table.column("uCode")
    out = []
    for i, row in enumerate(table.rows):
        code = to_text(row[j])
        if not code:
            raise IndexInputError(
                "missing unit code", file=table.file, row=table.row_number(i), column="uCode"
            )
        out.append(code)
    return np.array(out, dtype=object)


def _numbers(table: Table, column: str) -> np.ndarray:
    j = table.column(column)
    return np.array(
        [to_float(r[j], table=table, i=i, column=column) for i, r in enumerate(table.rows)]
    )


def _check_duplicates(table: Table, units: np.ndarray, times: np.ndarray | None) -> None:
    seen: dict[tuple, int] = {}
    for i, code in enumerate(units):
        key = (code, None if times is None else times[i])
        if key in seen:
            when = "" if times is None else f" in Time {times[i]:g}"
            raise IndexInputError(
                f"duplicate unit {code!r}{when} (first at row {seen[key]})",
                file=table.file,
                row=table.row_number(i),
                column="uCode",
            )
        seen[key] = table.row_number(i)


def _check_empty_units(table: Table, units: np.ndarray, values: np.ndarray) -> None:
    if values.shape[1] == 0:
        return
    empty = np.isnan(values).all(axis=1)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise IndexInputError(
            f"unit {units[i]!r} has no indicator data at all",
            file=table.file,
            row=table.row_number(i),
        )
