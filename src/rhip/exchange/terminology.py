"""Terminology (术语标准化): local item codes → standard codes, units → UCUM, values → one unit.

Each institution's LIS names items its own way (``GLU``, ``葡萄糖``, ``0101``). Operators load
item code maps (项目对照表) from CSV; the platform default map (institution "") ships with rhip
(``terminology_data/starter_lab_items.csv``: common lab items with LOINC codes). At ingest every
observation gets its standard code and its value in the standard unit, so one test compares
across institutions. Unit arithmetic is UCUM through ucumvert + pint, never a hand-written table;
what UCUM cannot do (mass ↔ substance for one analyte) is a factor in the map:

>>> unit_factor("g/dL", "g/L"), unit_factor("10*9/L", "/nL"), unit_factor("mg/dL", "mmol/L")
(10.0, 1.0, None)
>>> ucum_unit("×10^9/L"), ucum_unit("μmol/L"), ucum_unit("IU/L")
('10*9/L', 'umol/L', '[IU]/L')
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from sqlalchemy import Connection, Engine, delete, select, tuple_

from rhip.exchange.models import code_maps
from rhip.kernel.clock import now
from rhip.kernel.errors import InvalidInput, ManyErrors
from rhip.registry.models import institutions
from rhip.store import bulk_insert

LOINC = "http://loinc.org"
# 国家检验结果互认项目: the national list of mutually recognised lab items
RECOGNITION_LIST = "urn:rhip:cs:recognition-item"
SYSTEM_ALIASES = {"LN": LOINC, "LOINC": LOINC, "NRL": RECOGNITION_LIST, "HR": RECOGNITION_LIST}
STARTER = Path(__file__).with_name("terminology_data") / "starter_lab_items.csv"
CSV_COLUMNS = (
    "institution", "local_code", "local_display", "system", "code", "display", "unit",
    "from_unit", "factor",
)  # fmt: skip
# unit_status values of standardise(): what happened to an observation's unit
UNIT_OK, UNIT_NONE, UNIT_MISSING, UNIT_UNKNOWN, UNIT_INCOMPATIBLE = (
    "ok", "none", "missing", "unknown", "incompatible",
)  # fmt: skip


class TerminologyError(InvalidInput):
    """A code map that cannot be loaded (术语对照错误); the message names the CSV line."""


# -- units ---------------------------------------------------------------------------------
# Notation only (how LIS software writes UCUM units), no conversion factors: those come from
# UCUM. ×10^9/L, x10~9/L, 10E9/L → 10*9/L; μ/µ → u; IU → [IU]; mmHg → mm[Hg]; mEq → meq.
_POWER = re.compile(r"^[x×*]?\s*10\s*(?:\^|~|\*|E|e)\s*([+-]?\d+)\s*")
_IU = re.compile(r"(?<!\[)IU(?!\])")
_WORDS = {"sec": "s", "秒": "s", "mmHg": "mm[Hg]", "mEq": "meq", "个/L": "/L"}

_registry: Any = None
_registry_lock = threading.Lock()


def _ureg() -> Any:
    """The pint registry with UCUM units (built once: it takes about a second)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            from ucumvert import PintUcumRegistry

            _registry = PintUcumRegistry()
        return _registry


@functools.lru_cache(maxsize=4096)
def warm() -> None:
    """Build the UCUM registry now (about a second, once per process) rather than at the first
    observation: a listener calls this at start-up."""
    _ureg()


@functools.lru_cache(maxsize=4096)
def ucum_unit(text: str | None) -> str | None:
    """The UCUM spelling of a unit as an LIS writes it (notation fixes only)."""
    if not isinstance(text, str) or not text.strip():
        return None
    unit = text.strip().replace("μ", "u").replace("µ", "u").replace(" ", "")
    for word, ucum in _WORDS.items():
        unit = unit.replace(word, ucum)
    unit = _POWER.sub(lambda m: f"10*{m.group(1)}", unit)
    return _IU.sub("[IU]", unit)


@functools.lru_cache(maxsize=4096)
def _parse(unit: str) -> Any:
    """The pint quantity of one UCUM unit, or None if it is not UCUM (parsed once per unit)."""
    try:
        quantity = _ureg().from_ucum(unit)
    except Exception:  # ucumvert raises lark errors and, for some annotations, AttributeError
        return None
    return quantity if hasattr(quantity, "units") else None


def is_ucum(unit: str | None) -> bool:
    return unit is not None and _parse(unit) is not None


@functools.lru_cache(maxsize=4096)
def unit_factor(source: str, target: str) -> float | None:
    """Multiply a value in ``source`` by this to get it in ``target``; None if UCUM cannot."""
    a, b = _parse(source), _parse(target)
    if a is None or b is None:
        return None
    try:
        return float(a.to(b.units).magnitude / b.magnitude)
    except Exception:  # pint DimensionalityError and friends: not convertible
        return None


# -- code maps -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoadResult:
    rows: int
    institutions: tuple[str, ...]  # "" is the platform default


def load_code_map(engine: Engine, csv_path: str | Path) -> LoadResult:
    """Load a code-map CSV (UTF-8, header ``institution,local_code,…``), all or nothing.

    Rows replace earlier rows with the same (institution, local code, from unit). Every bad line
    is reported (``line 7: unit 'mg/dl' …``) in one TerminologyError before anything is written.
    """
    with Path(csv_path).open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("local_code", "system", "code") if c not in header]
        if missing:
            raise TerminologyError(f"line 1: header lacks column(s) {', '.join(missing)}")
        lines = list(enumerate(reader, start=2))
    with engine.begin() as conn:
        known = _institution_ids(conn)
        rows, errors = _read_rows(lines, known)
        if errors:
            raise ManyErrors(errors) if len(errors) > 1 else errors[0]
        keys = [(r["institution_id"], r["local_code"], r["from_unit"]) for r in rows]
        for chunk in _chunks(keys, 500):
            conn.execute(
                delete(code_maps).where(
                    tuple_(code_maps.c.institution_id, code_maps.c.local_code,
                           code_maps.c.from_unit).in_(chunk)
                )
            )  # fmt: skip
        columns = list(rows[0]) if rows else []
        bulk_insert(conn, code_maps, [tuple(r.values()) for r in rows], columns)
    forget_code_maps()
    return LoadResult(len(rows), tuple(sorted({r["institution_id"] for r in rows})))


def _institution_ids(conn: Connection) -> dict[str, str]:
    """Institution id and credit code (统一社会信用代码) → id: a CSV may name either."""
    out: dict[str, str] = {}
    for iid, credit in conn.execute(select(institutions.c.id, institutions.c.credit_code)):
        out[iid] = out[credit] = iid
    return out


def _read_rows(lines, known: dict[str, str]) -> tuple[list[dict], list[TerminologyError]]:
    rows, errors, seen = [], [], {}
    loaded = now()
    for line, raw in lines:
        try:
            row = _row(raw, known, loaded)
        except ValueError as exc:
            errors.append(TerminologyError(f"line {line}: {exc}"))
            continue
        key = (row["institution_id"], row["local_code"], row["from_unit"])
        if key in seen:
            errors.append(TerminologyError(f"line {line}: repeats line {seen[key]} ({key[1]})"))
            continue
        seen[key] = line
        rows.append(row)
    return rows, errors


def _row(raw: dict[str, str | None], known: dict[str, str], loaded: dt.datetime) -> dict:
    get = {k: (v or "").strip() for k, v in raw.items() if k is not None}
    for name in ("local_code", "system", "code"):
        if not get.get(name):
            raise ValueError(f"{name} is empty")
    institution = get.get("institution", "")
    if institution and institution not in known:
        raise ValueError(f"institution {institution!r} is not registered (id or credit code)")
    unit, from_unit = ucum_unit(get.get("unit")), ucum_unit(get.get("from_unit")) or ""
    for label, value in (("unit", unit), ("from_unit", from_unit or None)):
        if value is not None and not is_ucum(value):
            raise ValueError(f"{label} {value!r} is not a UCUM unit")
    factor = _factor(get.get("factor", ""), from_unit, unit)
    return {
        "institution_id": known.get(institution, ""),
        "local_code": get["local_code"][:64],
        "local_display": get.get("local_display", "")[:300] or None,
        "std_system": SYSTEM_ALIASES.get(get["system"].upper(), get["system"])[:200],
        "std_code": get["code"][:64],
        "std_display": (get.get("display") or get.get("local_display") or get["code"])[:300],
        "unit": unit,
        "from_unit": from_unit,
        "factor": factor,
        "loaded_at": loaded,
    }


def _factor(text: str, from_unit: str, unit: str | None) -> float | None:
    if not text:
        if from_unit:
            raise ValueError(f"from_unit {from_unit!r} needs a factor")
        return None
    if not from_unit or unit is None:
        raise ValueError("a factor needs both from_unit and unit")
    try:
        factor = float(text)
    except ValueError:
        raise ValueError(f"factor {text!r} is not a number") from None
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor {text!r} must be a positive number")
    return factor


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- standardisation at ingest ----------------------------------------------------------------
STD_COLUMNS = ("std_system", "std_code", "std_display", "std_value", "std_unit")
CACHE_TTL = 10.0  # seconds until a code map loaded by another process is seen here
_generation = 0  # bumped by load_code_map: a load in this process is seen at once
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Engine → {institution: map}


@dataclass(slots=True)
class CodeMap:
    """An institution's code maps (its own rows and the platform default's), read once and
    kept for ``CACHE_TTL``; the standard of each (code, system, unit) is worked out once."""

    institution_id: str
    maps: dict  # (scope, 'local'|'std', code) → {from_unit: row}
    generation: int
    expires: float
    memo: dict = field(default_factory=dict)  # (code, system, unit) → standard

    def standard(self, code: str, system: str | None, unit: str | None) -> tuple:
        """(std_system, std_code, std_display, factor, std_unit, mapped, unit_status)."""
        entry = _choose(self.maps, self.institution_id, code, system)
        rows = self.maps.get(entry["key"], {}) if entry and entry["key"] else {}
        factor, std_unit, status = _conversion(ucum_unit(unit), rows)
        if entry is None:  # an unmapped, non-LOINC code has no standard: no standard value
            return None, None, None, None, None, False, status
        return (entry["std_system"], entry["std_code"], entry["std_display"], factor, std_unit,
                True, status)  # fmt: skip


def code_map(conn: Connection, institution_id: str) -> CodeMap:
    """The cached code map of ``institution_id`` on ``conn``'s database (one query on a miss)."""
    per_db = _cache.setdefault(conn.engine, {})
    found = per_db.get(institution_id)
    if found is not None and found.generation == _generation and found.expires > time.monotonic():
        return found
    generation = _generation
    rows = conn.execute(
        select(code_maps).where(code_maps.c.institution_id.in_(["", institution_id]))
    ).mappings()
    maps: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        r = dict(r)
        maps.setdefault((r["institution_id"], "local", r["local_code"]), {})[r["from_unit"]] = r
        if r["std_system"] == LOINC:
            maps.setdefault((r["institution_id"], "std", r["std_code"]), {})[r["from_unit"]] = r
    found = CodeMap(institution_id, maps, generation, time.monotonic() + CACHE_TTL)
    per_db[institution_id] = found
    return found


def forget_code_maps() -> None:
    """Drop every cached code map (``load_code_map`` does this for its own process)."""
    global _generation
    _generation += 1


def standardise_columns(
    conn: Connection,
    institution_id: str,
    code: Sequence[str],
    system: Sequence[str | None],
    num: Sequence[float | None],
    unit: Sequence[str | None],
) -> dict[str, list]:
    """Standard code and value of each observation, given as columns: STD_COLUMNS plus
    ``mapped`` (a map row or a LOINC code was found) and ``unit_status``, as lists.

    Set-based: the institution's map comes from the cache, the standard of each distinct
    (code, system, unit) is worked out once, then one pass multiplies the values.
    """
    cmap = code_map(conn, institution_id)
    memo = cmap.memo
    if len(memo) > 100_000:  # a sender inventing codes: keep memory bounded
        memo.clear()
    found = []
    for key in zip(code, system, unit, strict=True):
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = cmap.standard(*key)
        found.append(hit)
    if not found:
        return {name: [] for name in (*STD_COLUMNS, "mapped", "unit_status")}
    columns = map(list, zip(*found, strict=True))
    s_system, s_code, s_display, factor, s_unit, mapped, status = columns
    value = [
        None if f is None or v is None or v != v else v * f
        for v, f in zip(num, factor, strict=True)
    ]
    return {
        "std_system": s_system, "std_code": s_code, "std_display": s_display, "std_value": value,
        "std_unit": s_unit, "mapped": mapped, "unit_status": status,
    }  # fmt: skip


def standardise(conn: Connection, institution_id: str, obs: pd.DataFrame) -> pd.DataFrame:
    """``standardise_columns`` for a frame with columns code, code_system, num, unit: a frame
    on the same index, None (not NaN) where there is no value."""
    nums = [None if v is None or v != v else float(v) for v in obs["num"].tolist()]
    out = standardise_columns(conn, institution_id, obs["code"].tolist(),
                              obs["code_system"].tolist(), nums, obs["unit"].tolist())  # fmt: skip
    return pd.DataFrame(
        {k: pd.Series(v, index=obs.index, dtype=object) for k, v in out.items()}, index=obs.index
    )


def _choose(maps: dict, institution_id: str, code: str, system: str | None) -> dict | None:
    """The institution's own row, else the platform default; a LOINC code stands for itself."""
    for key in ((institution_id, "local", code), ("", "local", code)):
        if "" in maps.get(key, {}):
            return {**maps[key][""], "key": key}
    if system == LOINC:
        for key in ((institution_id, "std", code), ("", "std", code)):
            if "" in maps.get(key, {}):
                return {**maps[key][""], "key": key}
        return {"std_system": LOINC, "std_code": code, "std_display": None, "key": None}
    return None


def _conversion(unit: str | None, rows: dict[str, dict]) -> tuple[float | None, str | None, str]:
    """(factor, standard unit, unit status) for one unit of one map entry."""
    target = rows[""]["unit"] if "" in rows else unit  # no map row: keep the unit it came in
    if unit is None:
        return (1.0, None, UNIT_NONE) if target is None else (None, target, UNIT_MISSING)
    if not is_ucum(unit):
        return None, target, UNIT_UNKNOWN
    if target is None:
        return 1.0, unit, UNIT_OK
    factor = unit_factor(unit, target)
    if factor is not None:
        return factor, target, UNIT_OK
    for from_unit, row in rows.items():
        step = unit_factor(unit, from_unit) if from_unit and row["factor"] else None
        if step is not None:
            return step * row["factor"], target, UNIT_OK
    return None, target, UNIT_INCOMPATIBLE


# -- CLI: rhip terminology load FILE ----------------------------------------------------------
app = typer.Typer(help="Item code maps and units (术语对照).", no_args_is_help=True)


@app.command("load")
def load_cmd(
    file: Path = typer.Argument(None, help="code-map CSV (default: the shipped starter list)"),
) -> None:
    """Load a code-map CSV into the database; errors name the CSV line."""
    from rich.console import Console

    from rhip.kernel.settings import Settings
    from rhip.store import make_engine, upgrade

    console = Console()
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    try:
        result = load_code_map(engine, file or STARTER)
    except (TerminologyError, ManyErrors) as exc:
        for err in getattr(exc, "errors", [exc]):
            console.print(f"[red]{err.message}[/]")
        raise typer.Exit(1) from None
    scopes = ", ".join(i or "platform default" for i in result.institutions)
    console.print(f"loaded {result.rows} code map rows ({scopes})")
