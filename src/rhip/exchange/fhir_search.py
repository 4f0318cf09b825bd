"""Searching and reading reports as FHIR (报告调阅): DiagnosticReport and Observation from the
``reports``/``observations`` tables.

Search returns current versions only (a cancelled or entered-in-error report has none); read by
id returns any version, with its status. Dates without an offset are CST (UTC+8); a date matches
the whole period it names (``date=2024-03-01`` is that day, ``ge2024-03`` from March on).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from rhip.exchange.fhir_refs import MpiLookup
from rhip.exchange.fhir_render import render_observation, render_report
from rhip.exchange.fhir_validate import FhirInvalid, parse_datetime
from rhip.exchange.models import observations, reports
from rhip.exchange.oru import EXAM_SECTIONS
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import NotFound, NotSupported

R, O = reports.c, observations.c  # noqa: E741 - the tables' initials
PREFIXES = ("eq", "ge", "le", "gt", "lt")
LAB_WORDS = frozenset({"LAB", "LABORATORY", "CH", "HM", "MB", "SR", "BLB", "CG", "SER"})
EXAM_WORDS = frozenset({*EXAM_SECTIONS, "EXAM", "IMAGING", "PROCEDURE"})


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    modifier: str | None
    value: str


def date_clause(column: Any, raw: str, name: str) -> Any:
    """``[prefix]date`` on ``column``: the date's whole period, compared by the prefix."""
    prefix, value = (raw[:2], raw[2:]) if raw[:2] in PREFIXES else ("eq", raw)
    if raw[:2].isalpha() and raw[:2] not in PREFIXES:
        raise NotSupported(
            f"{name}: prefix {raw[:2]!r} is not supported; one of {', '.join(PREFIXES)}",
            expression=name,
        )
    start = parse_datetime(value, name)
    end = _period_end(value, start)
    return {
        "eq": and_(column >= start, column < end),
        "ge": column >= start,
        "gt": column >= end,
        "le": column < end,
        "lt": column < start,
    }[prefix]


def _period_end(value: str, start: dt.datetime) -> dt.datetime:
    """The end (exclusive) of the period a search date names: year, month, day or instant."""
    if len(value) in (4, 7):
        year, month = int(value[:4]), int(value[5:7]) if len(value) == 7 else 0
        if len(value) == 4:
            nxt = f"{year + 1:04d}"
        else:
            nxt = f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"
        return parse_datetime(nxt, "date")
    if len(value) == 10:
        return start + dt.timedelta(days=1)
    return start + dt.timedelta(seconds=1)


def _token_clause(system_col: Any, code_col: Any, raw: str) -> Any:
    clauses = []
    for token in raw.split(","):
        system, code = token.split("|", 1) if "|" in token else (None, token)
        c = code_col == code
        clauses.append(and_(system_col == system, c) if system else c)
    return or_(*clauses)


def _category_clause(raw: str) -> Any:
    kinds = set()
    for token in raw.split(","):
        code = token.split("|")[-1].upper()
        if code in LAB_WORDS:
            kinds.add("lab")
        elif code in EXAM_WORDS:
            kinds.add("exam")
        else:
            kinds.add("none")  # a category rhip never assigns: matches nothing
    return R.kind.in_(sorted(kinds))


def _ref_id(raw: str, kind: str) -> str:
    return raw.split("/", 1)[1] if raw.startswith(f"{kind}/") else raw


def _clauses(conn: Connection, vault: IdentifierVault, params: Sequence[Criterion], obs: bool):
    date_col = O.observed_at if obs else func.coalesce(R.collected_at, R.issued_at)
    out = []
    for p in params:
        if (p.name == "patient" and p.modifier == "identifier") or p.name == "patient.identifier":
            out.append(R.patient_id.in_(_patients(conn, vault, p.value)))
        elif p.name in ("patient", "subject"):
            out.append(R.patient_id.in_([_ref_id(v, "Patient") for v in p.value.split(",")]))
        elif p.name == "code":
            if obs:  # as sent, or as standardised (LOINC) by terminology
                out.append(or_(_token_clause(O.code_system, O.code, p.value),
                               _token_clause(O.std_system, O.std_code, p.value)))  # fmt: skip
            else:
                out.append(_token_clause(R.code_system, R.code, p.value))
        elif p.name == "category":
            out.append(_category_clause(p.value))
        elif p.name == "date":
            out.append(date_clause(date_col, p.value, p.name))
        elif p.name == "issued":
            out.append(date_clause(R.issued_at, p.value, p.name))
        elif p.name == "performer":
            out.append(
                R.institution_id.in_([_ref_id(v, "Organization") for v in p.value.split(",")])
            )
        elif p.name == "status":
            out.append(R.status.in_(_statuses(p.value)))
        elif p.name == "_id":
            out.append((O.id if obs else R.id).in_(_ids(p.value, obs)))
        else:
            raise NotSupported(f"search parameter {p.name!r} is not supported", expression=p.name)
    return out


def _ids(raw: str, obs: bool) -> list[Any]:
    values = raw.split(",")
    return [int(v) for v in values if v.isdigit()] if obs else values


def _statuses(raw: str) -> list[str]:
    from rhip.exchange.fhir_map import REPORT_STATUS

    return sorted({REPORT_STATUS.get(v, v) for v in raw.split(",")})


def _patients(conn: Connection, vault: IdentifierVault, raw: str) -> list[str]:
    """Golden ids holding ``system|value`` (chained ``patient.identifier``), through the MPI."""
    lookup, out = MpiLookup(vault), set()
    for token in raw.split(","):
        system, value = token.split("|", 1) if "|" in token else (None, token)
        if not value:
            raise FhirInvalid("patient.identifier needs a value", expression="patient.identifier")
        out.update(lookup.by_identifier(conn, system or None, value))
    return sorted(out)


def search_reports(
    engine: Engine, vault: IdentifierVault, params: Sequence[Criterion], count: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Current DiagnosticReports matching every criterion, newest first."""
    with engine.connect() as conn:
        where = and_(R.current.is_(True), *_clauses(conn, vault, params, obs=False))
        total = conn.execute(select(func.count()).select_from(reports).where(where)).scalar_one()
        rows = conn.execute(
            select(reports).where(where).order_by(R.issued_at.desc(), R.id)
            .offset(offset).limit(count)
        ).mappings().all()  # fmt: skip
        return total, _render_reports(conn, rows)


def search_observations(
    engine: Engine, vault: IdentifierVault, params: Sequence[Criterion], count: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Observations of current reports matching every criterion, newest first."""
    with engine.connect() as conn:
        joined = observations.join(reports, R.id == O.report_id)
        where = and_(R.current.is_(True), *_clauses(conn, vault, params, obs=True))
        total = conn.execute(select(func.count()).select_from(joined).where(where)).scalar_one()
        rows = conn.execute(
            select(observations, *_report_cols()).select_from(joined).where(where)
            .order_by(O.observed_at.desc(), O.id).offset(offset).limit(count)
        ).mappings().all()  # fmt: skip
        return total, [render_observation(r) for r in rows]


def _report_cols() -> list[Any]:
    return [R.status.label("report_status"), R.kind.label("report_kind"),
            R.institution_id.label("institution_id"), R.issued_at.label("issued_at")]  # fmt: skip


def _render_reports(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    members: dict[str, list[int]] = {}
    if ids:
        for oid, rid in conn.execute(
            select(O.id, O.report_id).where(O.report_id.in_(ids)).order_by(O.seq, O.id)
        ):
            members.setdefault(rid, []).append(oid)
    return [render_report(r, members.get(r["id"], [])) for r in rows]


def read_report(engine: Engine, report_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(reports).where(R.id == report_id)).mappings().first()
        if row is None:
            raise NotFound(f"DiagnosticReport/{report_id} does not exist", expression="id")
        return _render_reports(conn, [row])[0]


def read_observation(engine: Engine, observation_id: str) -> dict[str, Any]:
    if not observation_id.isdigit():
        raise NotFound(f"Observation/{observation_id} does not exist", expression="id")
    with engine.connect() as conn:
        row = conn.execute(
            select(observations, *_report_cols())
            .select_from(observations.join(reports, R.id == O.report_id))
            .where(O.id == int(observation_id))
        ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFound(f"Observation/{observation_id} does not exist", expression="id")
    return render_observation(row)
