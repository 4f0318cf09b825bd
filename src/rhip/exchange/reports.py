"""The report store (报告库): versions of reports and their observations, keyed by golden patient.

Every message about a report adds a *version*; nothing is updated in place but the ``current``
flag. The newest version is current unless it is stale (its OBR-22 is earlier than the latest
stored version's: a late preliminary after the final) or cancelled (作废): a cancelled report has
no current version, so it is never shown as current. History is the list of versions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from rhip.exchange.models import observations, reports
from rhip.exchange.oru import ReportIn
from rhip.store import bulk_insert

REPORT_COLUMNS = (
    "id", "report_key", "version", "current", "patient_id", "institution_id", "kind",
    "code_system", "code", "display", "status", "placer_number", "filler_number", "specimen",
    "findings", "conclusion", "collected_at", "issued_at", "inbox_id", "recorded_at",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "report_id", "patient_id", "seq", "code_system", "code", "display", "value_type",
    "value_num", "comparator", "value_text", "value_code", "unit", "reference_range",
    "abnormal_flag", "status", "observed_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Latest:
    version: int
    issued_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """Reports of one message, each with its golden patient, ready to store."""

    institution_id: str
    items: Sequence[tuple[str, ReportIn]]  # (patient id, report)
    fallback_issued: dt.datetime  # MSH-7 or the receipt time, for reports without OBR-22
    inbox_id: int | None = None


def store(conn: Connection, batch: Batch, *, recorded_at: dt.datetime) -> list[str]:
    """Write the batch set-based: one query for prior versions, one update of current flags,
    one bulk insert of reports and one of observations. Returns the new report ids.
    """
    keys = sorted({item.key for _, item in batch.items})
    latest = _latest(conn, batch.institution_id, keys)
    report_rows: list[list[Any]] = []
    obs_rows: list[tuple] = []
    touched = set()
    for patient_id, item in batch.items:
        issued = item.issued_at or batch.fallback_issued
        prior = latest.get(item.key)
        current = item.status != "cancelled" and (prior is None or issued >= prior.issued_at)
        if current or item.status == "cancelled":
            touched.add(item.key)
            for row in report_rows:  # an earlier version from this same message
                if row[1] == item.key:
                    row[3] = False
        version = prior.version + 1 if prior else 1
        newest = max(issued, prior.issued_at) if prior else issued
        latest[item.key] = Latest(version, newest)
        rid = uuid.uuid4().hex
        report_rows.append(
            _report_row(rid, patient_id, item, (version, current, issued), batch, recorded_at)
        )
        obs_rows += _observation_rows(rid, patient_id, item, issued)
    if touched:
        conn.execute(
            update(reports)
            .where(
                reports.c.institution_id == batch.institution_id,
                reports.c.report_key.in_(sorted(touched)),
                reports.c.current.is_(True),
            )
            .values(current=False)
        )
    bulk_insert(conn, reports, [tuple(r) for r in report_rows], REPORT_COLUMNS)
    bulk_insert(conn, observations, obs_rows, OBSERVATION_COLUMNS)
    return [r[0] for r in report_rows]


def _latest(conn: Connection, institution_id: str, keys: list[str]) -> dict[str, Latest]:
    if not keys:
        return {}
    rows = conn.execute(
        select(reports.c.report_key, reports.c.version, reports.c.issued_at).where(
            reports.c.institution_id == institution_id, reports.c.report_key.in_(keys)
        )
    ).all()
    out: dict[str, Latest] = {}
    for key, version, issued in rows:
        known = out.get(key)
        newest = max(issued, known.issued_at) if known else issued
        out[key] = Latest(max(version, known.version if known else 0), newest)
    return out


def _report_row(rid, patient_id, item: ReportIn, state, batch: Batch, recorded_at) -> list[Any]:
    version, current, issued = state
    findings, conclusion = item.narrative() if item.kind == "exam" else (None, None)
    return [
        rid, item.key[:200], version, current, patient_id, batch.institution_id, item.kind,
        item.code_system, item.code, item.display, item.status, item.placer_number,
        item.filler_number, item.specimen, findings, conclusion, item.collected_at, issued,
        batch.inbox_id, recorded_at,
    ]  # fmt: skip


def _observation_rows(rid: str, patient_id: str, item: ReportIn, issued) -> list[tuple]:
    rows = []
    for o in item.observations:
        v = o.value
        rows.append((
            rid, patient_id, o.seq, o.code_system, o.code, o.display, v.type, v.num,
            v.comparator, v.text, v.code, o.unit, o.reference_range, o.abnormal_flag, o.status,
            o.observed_at or item.collected_at or issued,
        ))  # fmt: skip
    return rows


def current_reports(conn: Connection, patient_id: str) -> list[dict[str, Any]]:
    """The patient's current reports, newest first (cancelled and superseded ones excluded)."""
    rows = conn.execute(
        select(reports)
        .where(reports.c.patient_id == patient_id, reports.c.current.is_(True))
        .order_by(reports.c.issued_at.desc())
    )
    return [dict(r._mapping) for r in rows]


def history(conn: Connection, institution_id: str, report_key: str) -> list[dict[str, Any]]:
    """Every version of one report, oldest first: its status history (报告状态历史)."""
    rows = conn.execute(
        select(reports)
        .where(reports.c.institution_id == institution_id, reports.c.report_key == report_key)
        .order_by(reports.c.version)
    )
    return [dict(r._mapping) for r in rows]


def observations_of(conn: Connection, report_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(observations)
        .where(observations.c.report_id == report_id)
        .order_by(observations.c.seq, observations.c.id)
    )
    return [dict(r._mapping) for r in rows]
