"""GB/T 2260 administrative division codes (行政区划代码), current and historic.

The table is the one python-stdnum ships (every revision since 1980, with the years each code was
in force), so an ID issued under a code that has since been abolished still resolves.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from stdnum import numdb

_SPAN = re.compile(r"^\[(\d*)-(\d*)\](.*)$")


@dataclass(frozen=True, slots=True)
class Region:
    code: str  # six digits
    name: str  # the name in force most recently
    first_year: int | None
    last_year: int | None  # None: still in force

    @property
    def current(self) -> bool:
        return self.last_year is None


def _parse_names(raw: str) -> list[tuple[int | None, int | None, str]]:
    spans = []
    for part in raw.split(","):
        m = _SPAN.match(part)
        if m:
            start, end, name = m.groups()
            spans.append((int(start) if start else None, int(end) if end else None, name))
        else:
            spans.append((None, None, part))
    return spans


@functools.cache
def _db():
    return numdb.get("cn/loc")


def province_name(code: str) -> str | None:
    """The province (省级) name for the first two digits of ``code``, or None if there is none."""
    info = dict(_flat(code[:2]))
    return info.get("province")


def lookup(code: str) -> Region | None:
    """The county-level (or prefecture ``xx00``) region with this code, current or historic."""
    if len(code) != 6 or not code.isdigit():
        return None
    info = dict(_flat(code))
    raw = info.get("county")
    if not raw:
        return None
    spans = _parse_names(raw)
    first = min((s for s, _, _ in spans if s is not None), default=None)
    last_years = [e for _, e, _ in spans]
    last = None if any(e is None for e in last_years) else max(e for e in last_years if e)
    return Region(code, spans[-1][2], first, last)


def valid_in(code: str, year: int) -> bool:
    """Whether ``code`` was in force in ``year`` (an ID keeps its first registration's code)."""
    info = dict(_flat(code))
    raw = info.get("county")
    if not raw:
        return False
    return any(
        (s is None or year >= s) and (e is None or year <= e) for s, e, _ in _parse_names(raw)
    )


@functools.cache
def counties() -> tuple[Region, ...]:
    """Every county-level region in the table, current and abolished (no 市辖区/县 placeholders)."""
    found = []
    for _, prov, _, _, children in _db().prefixes:
        for _, low, high, _, _ in children:
            if low != high or low.endswith("00"):  # ranges and prefecture-level rows
                continue
            region = lookup(prov + low)
            if region is not None and region.name not in ("市辖区", "县"):
                found.append(region)
    return tuple(found)


def _flat(code: str) -> list[tuple[str, str]]:
    return [(k, v) for _, props in _db().info(code) for k, v in props.items()]


# 深圳市 Shenzhen's districts in force today (GB/T 2260), the model city of the synthetic data.
SHENZHEN = {
    "440303": "罗湖区",
    "440304": "福田区",
    "440305": "南山区",
    "440306": "宝安区",
    "440307": "龙岗区",
    "440308": "盐田区",
    "440309": "龙华区",
    "440310": "坪山区",
    "440311": "光明区",
}
