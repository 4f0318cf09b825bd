"""Viewing (调阅): a doctor's timeline of a patient's reports across institutions, one report with
its observations, and the history of one test for trend charts.

Each function is ONE indexed query returning plain dicts. A golden record's reports include those
filed under records merged into it (``mpi_persons.merged_into``: merges re-point earlier merges,
so one hop suffices). Only current versions are listed: superseded, stale and cancelled (作废)
versions never are (``reports.current``).

Paging is keyset (``before`` = the ``next`` cursor of the previous page), newest first, so page
100 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)

from rhip.exchange.models import REPORT_KINDS, observations, reports
from rhip.identity.models import persons
from rhip.kernel.clock import CST
from rhip.kernel.errors import InvalidInput, MalformedInput, NotFound
from rhip.registry.models import institutions

R, O, I = reports.c, observations.c, institutions.c  # noqa: E741 - the table's initial
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 id datatype
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
TREND_LIMIT = 1000
# the terminology columns (标准化) may be absent in an older schema: then codes as sent are used
HAS_STD = "std_code" in observations.c
# HL7 table 0078 abnormal flags → (abnormal, critical, label)
FLAGS: dict[str, tuple[bool, bool, str]] = {
    "N": (False, False, "正常 normal"),
    "L": (True, False, "偏低 low"),
    "H": (True, False, "偏高 high"),
    "LL": (True, True, "危急低 critically low"),
    "HH": (True, True, "危急高 critically high"),
    "<": (True, False, "低于检测下限 below absolute low"),
    ">": (True, False, "高于检测上限 above absolute high"),
    "A": (True, False, "异常 abnormal"),
    "AA": (True, True, "危急异常 critically abnormal"),
    "LU": (True, False, "显著偏低 significantly low"),
    "HU": (True, False, "显著偏高 significantly high"),
    "POS": (True, False, "阳性 positive"),
    "NEG": (False, False, "阴性 negative"),
}
TIMELINE_COLUMNS = (
    R.id, R.patient_id, R.kind, R.code_system, R.code, R.display, R.status, R.version,
    R.issued_at, R.collected_at, R.institution_id, I.name.label("institution_name"),
    R.specimen, R.conclusion,
)  # fmt: skip


def check_id(value: str, what: str) -> str:
    """``value`` if it is a well-formed FHIR id, else a 400 naming ``what``."""
    if not FHIR_ID.match(value or ""):
        raise MalformedInput(
            f"{what} id {value!r} is malformed: 1-64 letters, digits, '-' or '.'", expression=what
        )
    return value


def patient_keys(patient_id: str):
    """The ids reports of this golden record are filed under: itself and records merged into it."""
    merged = select(persons.c.id).where(persons.c.merged_into == patient_id)
    return union_all(select(literal(patient_id)), merged)


def timeline(
    conn: Connection,
    patient_id: str,
    *,
    kind: str | None = None,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    institution: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: str | None = None,
) -> dict[str, Any]:
    """The patient's current reports from every institution, newest first (诊疗时间轴).

    ``since``/``until`` bound ``issued_at``; a date means the whole day in CST (``until``
    inclusive). Returns ``{"patient_id", "items": [...], "next": cursor or None}``.
    """
    check_id(patient_id, "patient")
    if kind is not None and kind not in REPORT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(REPORT_KINDS)}", expression="kind")
    start, end = date_range(since, until)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", expression="limit")
    query = timeline_query(patient_id, kind, (start, end), institution, limit + 1, before)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if not rows and before is None:
        _ensure_patient(conn, patient_id)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1]["issued_at"], rows[-1]["id"]) if more else None
    return {"patient_id": patient_id, "items": rows, "next": cursor}


def timeline_query(
    patient_id: str,
    kind=None,
    span=(None, None),
    institution=None,
    limit=DEFAULT_LIMIT,
    before=None,
) -> Select:
    """The timeline's one statement (also the benchmark's bare-SQL baseline).

    Two ordered, limited branches — the record's own reports, then those of records merged into
    it — so the common case is a backward scan of ``reports(patient_id, issued_at)`` that stops
    after ``limit`` rows, even for a patient with thousands of reports.
    """

    def branch(who):
        query = (
            select(*TIMELINE_COLUMNS)
            .join(institutions, I.id == R.institution_id)
            .where(who, R.current.is_(True))
            .order_by(R.issued_at.desc(), R.id.desc())
            .limit(limit)
        )
        return select(_filters(query, kind, *span, institution, before).subquery())

    merged = select(persons.c.id).where(persons.c.merged_into == patient_id)
    both = union_all(branch(R.patient_id == patient_id), branch(R.patient_id.in_(merged)))
    rows = both.subquery()
    return select(rows).order_by(rows.c.issued_at.desc(), rows.c.id.desc()).limit(limit)


def _filters(query: Select, kind, start, end, institution, before) -> Select:
    if kind:
        query = query.where(R.kind == kind)
    if start is not None:
        query = query.where(R.issued_at >= start)
    if end is not None:
        query = query.where(R.issued_at < end)
    if institution:
        query = query.where(R.institution_id == check_id(institution, "institution"))
    if before:
        at, rid = decode_cursor(before)
        query = query.where(tuple_(R.issued_at, R.id) < tuple_(literal(at, R.issued_at.type), rid))
    return query


def date_range(since, until) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Half-open [start, end) in UTC; a date is a CST day, ``until`` a date includes that day."""
    start = _instant(since, "since", 0)
    end = _instant(until, "until", 1)
    if start is not None and end is not None and start >= end:
        raise InvalidInput(
            f"date range is the wrong way round: since {since} is not before until {until}",
            expression="since",
        )
    return start, end


def _instant(value, name: str, day_offset: int) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=CST)  # local times without an offset are CST
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        day = dt.datetime.combine(value, dt.time(), CST) + dt.timedelta(days=day_offset)
        return day.astimezone(dt.UTC)
    raise InvalidInput(f"{name} must be a date or a date-time", expression=name)


def encode_cursor(issued_at: dt.datetime, report_id: str) -> str:
    raw = f"{issued_at.astimezone(dt.UTC).isoformat()}|{report_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The (issued_at, id) a page ended at; a cursor not made by ``encode_cursor`` is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, rid = raw.split("|", 1)
        return dt.datetime.fromisoformat(at), check_id(rid, "before")
    except (ValueError, UnicodeDecodeError, MalformedInput):
        raise MalformedInput(
            "before is not a cursor from a previous page's next", expression="before"
        ) from None


def _ensure_patient(conn: Connection, patient_id: str) -> None:
    """404 unless the MPI knows the patient or reports are filed under the id (empty pages only)."""
    known = conn.execute(
        select(literal(1)).where(
            or_(
                select(persons.c.id).where(persons.c.id == patient_id).exists(),
                select(R.id).where(R.patient_id == patient_id).exists(),
            )
        )
    ).first()
    if known is None:
        raise NotFound(f"Patient/{patient_id} is not known", expression="patient")


def report_patient(conn: Connection, report_id: str) -> str:
    """The golden patient of a report (for the access decision before the read): the record it
    is filed under, or the survivor that record was merged into. 404 for an unknown report."""
    golden = func.coalesce(persons.c.merged_into, R.patient_id)
    found = conn.execute(
        select(golden)
        .select_from(reports)
        .outerjoin(persons, persons.c.id == R.patient_id)
        .where(R.id == check_id(report_id, "report"))
    )
    patient_id = found.scalar()
    if patient_id is None:
        raise NotFound(f"DiagnosticReport/{report_id} does not exist", expression="report")
    return patient_id


def report_detail(conn: Connection, report_id: str) -> dict[str, Any]:
    """One report with its observations, reference ranges and abnormal flags (报告详情)."""
    check_id(report_id, "report")
    skip = ("id", "report_id", "patient_id")
    obs_cols = [c.label(f"o_{c.name}") for c in observations.c if c.name not in skip]
    obs_cols.append(O.id.label("obs_id"))
    rows = conn.execute(
        select(reports, I.name.label("institution_name"), *obs_cols)
        .join(institutions, I.id == R.institution_id)
        .outerjoin(observations, O.report_id == R.id)
        .where(R.id == report_id)
        .order_by(O.seq, O.id)
    ).mappings().all()  # fmt: skip
    if not rows:
        raise NotFound(f"DiagnosticReport/{report_id} does not exist", expression="report")
    head = {c.name: rows[0][c.name] for c in reports.c}
    head["institution_name"] = rows[0]["institution_name"]
    head.pop("inbox_id", None)
    obs = [_observation(r) for r in rows if r["obs_id"] is not None]
    head["observations"] = obs
    head["abnormal_count"] = sum(o["abnormal"] for o in obs)
    return head


def _observation(row) -> dict[str, Any]:
    out = {k[2:]: v for k, v in row.items() if k.startswith("o_")}
    out["id"] = row["obs_id"]
    flag = (out.get("abnormal_flag") or "").strip().upper()
    # an unknown flag is shown as sent and counted abnormal: it is not "N"
    abnormal, critical, label = (
        FLAGS.get(flag, (True, False, flag)) if flag else (False, False, None)
    )
    out.update(abnormal=abnormal, critical=critical, flag_label=label)
    return out


def trend(
    conn: Connection,
    patient_id: str,
    code: str,
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
) -> dict[str, Any]:
    """One test's results across institutions, oldest first, for a trend chart (趋势).

    ``code`` is matched against the standard code (LOINC via the code maps) and, for observations
    that have none, against the code as sent; values are in the standard unit where known.
    """
    check_id(patient_id, "patient")
    if not code or len(code) > 64:
        raise InvalidInput("code is required (at most 64 characters)", expression="code")
    start, end = date_range(since, until)
    cols = [O.observed_at, O.value_num, O.comparator, O.value_text, O.unit, O.reference_range,
            O.abnormal_flag, O.code, O.display, R.id.label("report_id"), R.status,
            R.institution_id, I.name.label("institution_name")]  # fmt: skip
    match = O.code == code
    if HAS_STD:
        cols += [O.std_code, O.std_display, O.std_value, O.std_unit]
        match = or_(O.std_code == code, and_(O.std_code.is_(None), O.code == code))
    query = (
        select(*cols)
        .join(reports, R.id == O.report_id)
        .join(institutions, I.id == R.institution_id)
        .where(O.patient_id.in_(patient_keys(patient_id)), match, R.current.is_(True))
        .order_by(O.observed_at, O.id)
        .limit(TREND_LIMIT)
    )
    if start is not None:
        query = query.where(O.observed_at >= start)
    if end is not None:
        query = query.where(O.observed_at < end)
    rows = conn.execute(query).mappings().all()
    if not rows:
        _ensure_patient(conn, patient_id)
    points = [_point(r) for r in rows]
    display = next((p["display"] for p in reversed(points) if p["display"]), None)
    units = {p["unit"] for p in points if p["value"] is not None}
    return {
        "patient_id": patient_id,
        "code": code,
        "display": display,
        "unit": units.pop() if len(units) == 1 else None,  # None: mixed units, not comparable
        "points": points,
    }


def _point(row) -> dict[str, Any]:
    std = HAS_STD and row["std_code"] is not None
    value = row["std_value"] if std and row["std_value"] is not None else row["value_num"]
    unit = row["std_unit"] if std and row["std_value"] is not None else row["unit"]
    return {
        "observed_at": row["observed_at"],
        "value": value,
        "unit": unit,
        "comparator": row["comparator"],
        "value_text": row["value_text"],
        "value_as_sent": row["value_num"],
        "unit_as_sent": row["unit"],
        "reference_range": row["reference_range"],
        "abnormal_flag": row["abnormal_flag"],
        "display": (row["std_display"] if std else None) or row["display"],
        "report_id": row["report_id"],
        "status": row["status"],
        "institution_id": row["institution_id"],
        "institution_name": row["institution_name"],
    }
