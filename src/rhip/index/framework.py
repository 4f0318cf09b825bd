"""The index framework (指标体系): indicators → dimensions → aspects → index, any depth.

A framework is a tree of nodes. Leaves are indicators (指标) with a direction, weight, unit,
optional target, goalposts and denominator; inner nodes are aggregates (维度/方面/指数) with a
weight inside their parent. Levels are counted from the leaves (indicator = 1), as in COINr's
`iMeta`, so any number of levels works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rhip.index.errors import IndexInputError

INDICATOR = "Indicator"
AGGREGATE = "Aggregate"
GROUP = "Group"
DENOMINATOR = "Denominator"


@dataclass(frozen=True)
class Node:
    """One indicator or aggregate of the framework."""

    code: str
    name: str
    kind: str  # INDICATOR or AGGREGATE
    parent: str | None = None
    level: int = 1
    direction: int = 1
    weight: float = 1.0
    unit: str = ""
    target: float | None = None
    goalpost_low: float | None = None
    goalpost_high: float | None = None
    denominator: str | None = None
    scale_factor: float = 1.0
    name_en: str = ""
    source: str = ""  # where the figure comes from (数据来源)
    row: int | str | None = None  # row in the source file, for error messages


@dataclass
class Framework:
    """A validated framework: nodes in file order plus group and denominator columns."""

    nodes: dict[str, Node]
    groups: list[str] = field(default_factory=list)
    denominators: list[str] = field(default_factory=list)
    name: str = "Index"
    level_names: list[str] = field(default_factory=list)
    default_pipeline: dict[str, Any] | None = None
    source: str = ""

    @property
    def indicators(self) -> list[str]:
        return [c for c, n in self.nodes.items() if n.kind == INDICATOR]

    @property
    def aggregates(self) -> list[str]:
        """Aggregate codes ordered bottom-up (by level, then file order)."""
        aggs = [n for n in self.nodes.values() if n.kind == AGGREGATE]
        return [n.code for n in sorted(aggs, key=lambda n: n.level)]

    @property
    def max_level(self) -> int:
        return max(n.level for n in self.nodes.values())

    @property
    def root(self) -> str:
        return next(n.code for n in self.nodes.values() if n.parent is None)

    def children(self, code: str) -> list[str]:
        return [c for c, n in self.nodes.items() if n.parent == code]

    def codes_at(self, level: int) -> list[str]:
        return [c for c, n in self.nodes.items() if n.level == level]

    def ancestors(self, code: str) -> list[str]:
        out, parent = [], self.nodes[code].parent
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def weights(self) -> dict[str, float]:
        return {c: n.weight for c, n in self.nodes.items()}

    def directions(self) -> list[int]:
        return [self.nodes[c].direction for c in self.indicators]


def build_framework(nodes: list[Node], *, file: str = "", **kwargs: Any) -> Framework:
    """Validate nodes (unique codes, real parents, no cycles, positive weights) and level them."""
    by_code: dict[str, Node] = {}
    for node in nodes:
        if not node.code:
            raise IndexInputError("missing indicator code", file=file, row=node.row, column="iCode")
        if node.code in by_code:
            raise IndexInputError(
                f"duplicate code {node.code!r} (first at row {by_code[node.code].row})",
                file=file,
                row=node.row,
                column="iCode",
            )
        by_code[node.code] = node
    for node in nodes:
        _check_node(node, by_code, file)
    _check_cycles(by_code, file)
    levels = _levels(by_code, file)
    fixed = {c: _with_level(n, levels[c]) for c, n in by_code.items()}
    roots = [c for c, n in fixed.items() if n.parent is None]
    if len(roots) != 1:
        raise IndexInputError(
            f"the framework needs exactly one top node (no Parent), found {roots}",
            file=file,
            column="Parent",
        )
    return Framework(nodes=fixed, source=file, **kwargs)


def _check_node(node: Node, by_code: dict[str, Node], file: str) -> None:
    if node.parent is not None and node.parent not in by_code:
        raise IndexInputError(
            f"parent {node.parent!r} of {node.code!r} does not exist",
            file=file,
            row=node.row,
            column="Parent",
        )
    if node.parent is not None and by_code[node.parent].kind != AGGREGATE:
        raise IndexInputError(
            f"parent {node.parent!r} of {node.code!r} is an indicator, not an aggregate",
            file=file,
            row=node.row,
            column="Parent",
        )
    if (
        not (isinstance(node.weight, int | float) and math.isfinite(node.weight))
        or node.weight <= 0
    ):
        raise IndexInputError(
            f"weight of {node.code!r} must be a positive number, got {node.weight!r}",
            file=file,
            row=node.row,
            column="Weight",
        )
    if node.direction not in (1, -1):
        raise IndexInputError(
            f"direction of {node.code!r} must be 1 or -1, got {node.direction!r}",
            file=file,
            row=node.row,
            column="Direction",
        )


def _check_cycles(by_code: dict[str, Node], file: str) -> None:
    for start in by_code.values():
        seen = [start.code]
        parent = start.parent
        while parent is not None:
            if parent in seen:
                path = " → ".join([*seen, parent])
                raise IndexInputError(
                    f"cycle in the framework: {path}", file=file, row=start.row, column="Parent"
                )
            seen.append(parent)
            parent = by_code[parent].parent


def _levels(by_code: dict[str, Node], file: str) -> dict[str, int]:
    """Level = 1 for indicators, 1 + highest child level for aggregates; checks given levels."""
    children: dict[str, list[str]] = {c: [] for c in by_code}
    for node in by_code.values():
        if node.parent is not None:
            children[node.parent].append(node.code)
    levels: dict[str, int] = {}

    def level(code: str) -> int:
        if code not in levels:
            node = by_code[code]
            if node.kind == INDICATOR:
                levels[code] = 1
            elif not children[code]:
                raise IndexInputError(
                    f"aggregate {code!r} has no children", file=file, row=node.row, column="Parent"
                )
            else:
                levels[code] = 1 + max(level(c) for c in children[code])
        return levels[code]

    for code in by_code:
        level(code)
    return levels


def _with_level(node: Node, level: int) -> Node:
    from dataclasses import replace

    return replace(node, level=level)
