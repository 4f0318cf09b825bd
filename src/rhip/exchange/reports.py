"""The report store (报告库): versions of reports and their observations, keyed by golden patient.

Every message about a report adds a *version*; nothing is updated in place but the ``current``
flag. The newest version is current unless it is stale (its OBR-22 is earlier than the latest
stored version's: a late preliminary after the final) or cancelled (作废): a cancelled report has
no current version, so it is never shown as current. History is the list of versions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from rhip import quality
from rhip.exchange import inbox, terminology
from rhip.exchange.models import observations, reports
from rhip.exchange.oru import ReportIn
from rhip.quality.models import quality_findings
from rhip.quality.repo import FINDING_COLUMNS
from rhip.quality.service import ScorecardTally
from rhip.store import bulk_insert
from rhip.store.pq import JsonRows, Pipeline, numbered, timestamp

REPORT_COLUMNS = (
    "id", "report_key", "version", "current", "patient_id", "institution_id", "kind",
    "code_system", "code", "display", "status", "placer_number", "filler_number", "specimen",
    "findings", "conclusion", "collected_at", "issued_at", "inbox_id", "recorded_at",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "report_id", "patient_id", "seq", "code_system", "code", "display", "value_type",
    "value_num", "comparator", "value_text", "value_code", "unit", "reference_range",
    "abnormal_flag", "status", "observed_at", *terminology.STD_COLUMNS,
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
    # patient id → FHIR administrative gender (PID-8, Patient.gender), for sex-specific rules
    gender: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one batch of ``store_many``: its new report ids, or why it was refused."""

    ids: list[str]
    rejection: quality.QualityRejected | None = None


def store(
    conn: Connection,
    batch: Batch,
    *,
    recorded_at: dt.datetime,
    rules: Sequence[quality.Rule] | None = None,
) -> list[str]:
    """Standardise, quality-check and write one batch; returns the new report ids.

    Raises ``quality.QualityRejected`` (nothing written) when an error rule fails.
    """
    (out,) = store_many(conn, [batch], recorded_at=recorded_at, rules=rules)
    if out.rejection is not None:
        raise out.rejection
    return out.ids


def store_many(
    conn: Connection,
    batches: Sequence[Batch],
    *,
    recorded_at: dt.datetime,
    rules: Sequence[quality.Rule] | None = None,
    tally: ScorecardTally | None = None,
) -> list[Stored]:
    """Standardise, quality-check and write many messages' batches in one go: one pass of each
    rule over all of them, one query for prior versions, one update of current flags, one bulk
    insert of reports and one of observations, one of warnings, one scorecard upsert.

    A batch that fails an error rule is refused alone (its ``Stored.rejection``; nothing of it
    written); the others are written. Batches apply in order, as if stored one after another.
    With ``tally`` the scorecard counts are added to it, not upserted here (the listener's group
    commit: see ``ScorecardTally``).
    """
    prepared = prepare_many(conn, batches, recorded_at=recorded_at, rules=rules)
    write_prepared(conn, prepared, tally)
    return prepared.outs


@dataclass(slots=True)
class Prepared:
    """``store_many`` up to its writes: versions decided, rows built, warnings found."""

    outs: list[Stored]
    unset: dict[str, set[str]]  # institution → keys whose stored current version is superseded
    report_rows: list[tuple]
    obs_rows: list[tuple]
    recording: quality.Recording


def prepare_many(
    conn: Connection,
    batches: Sequence[Batch],
    *,
    recorded_at: dt.datetime,
    rules: Sequence[quality.Rule] | None = None,
    latest: Mapping[tuple[str, str], Latest] | None = None,
) -> Prepared:
    """Everything of ``store_many`` but the writes. It reads the stored versions unless
    ``latest`` has them (``read_latest``, for at least the batches' keys)."""
    if not batches:
        return Prepared([], {}, [], [], quality.recording(recorded_at, []))
    frames = quality.Frames.of_many(batches)
    std = _standardise(conn, batches, frames.observations)
    ctx = quality.QualityContext(batches[0].institution_id, recorded_at)
    findings = quality.check_many(frames.with_standard(std), ctx, rules)
    rejections = [f.rejection() for f in findings]
    accepted = any(r is None for r in rejections)
    rows = _rows(conn, batches, rejections, std, recorded_at, latest) if accepted else None
    ids, unset, report_rows, obs_rows = rows or ({}, {}, [], [])
    kept = [
        (b.institution_id, f, ids[n])
        for n, (b, f) in enumerate(zip(batches, findings, strict=True))
        if rejections[n] is None
    ]
    outs = [Stored(ids.get(n, []), r) for n, r in enumerate(rejections)]
    return Prepared(outs, unset, report_rows, obs_rows, quality.recording(recorded_at, kept))


def write_prepared(conn: Connection, p: Prepared, tally: ScorecardTally | None = None) -> None:
    """Write what ``prepare_many`` built, in the caller's transaction."""
    unset_current(conn, p.unset)
    bulk_insert(conn, reports, p.report_rows, REPORT_COLUMNS, binary=True)
    bulk_insert(conn, observations, p.obs_rows, OBSERVATION_COLUMNS, binary=True)
    quality.write_recording(conn, p.recording, tally)


def send_prepared(pipe: Pipeline, p: Prepared, *, observations: bool = False) -> bool:
    """PostgreSQL: the superseded versions, the report rows and the warnings of ``p`` queued in
    a libpq pipeline (one round trip with the caller's other statements), each table's rows as
    one JSON parameter (``rhip.store.pq.JsonRows``), and with ``observations`` the observation
    rows too. Returns whether the observations were queued; if not, they are the caller's to
    COPY (``p.obs_rows``)."""
    if p.unset:
        pipe.send(b"rhip_unset_current", _UNSET_CURRENT_PQ, _key_arrays(p.unset.items()))
    _REPORT_ROWS.send(pipe, p.report_rows)
    _FINDING_ROWS.send(pipe, p.recording.warnings)
    return observations and _OBSERVATION_ROWS.send(pipe, p.obs_rows)


def unset_current(conn: Connection, touched: Mapping[str, set[str]]) -> None:
    """Clear the current flag of the stored versions of ``touched`` (institution → keys)."""
    if not touched:
        return
    if conn.dialect.name == "postgresql":  # pairs as two arrays, nothing to compile
        with inbox.driver_cursor(conn) as cur:
            cur.execute(_UNSET_CURRENT, _key_arrays(touched.items()))
        return
    t = reports.c  # one statement for every institution of the call
    scope = or_(*(and_(t.institution_id == iid, t.report_key.in_(sorted(keys)))
                  for iid, keys in sorted(touched.items())))  # fmt: skip
    conn.execute(update(reports).where(scope, t.current.is_(True)).values(current=False))


def _standardise(conn: Connection, batches: Sequence[Batch], obs) -> dict[str, list]:
    """Terminology's columns for every observation row, per sending institution."""
    args = (obs["code"], obs["code_system"], obs["num"], obs["unit"])
    institutions = {b.institution_id for b in batches}
    if len(institutions) == 1:
        return terminology.standardise_columns(conn, batches[0].institution_id, *args)
    out: dict[str, list] = {}
    of_row = [batches[b].institution_id for b in obs["batch"]]
    for iid in sorted(institutions):
        rows = [i for i, x in enumerate(of_row) if x == iid]
        part = terminology.standardise_columns(conn, iid, *([a[i] for i in rows] for a in args))
        for name, values in part.items():
            column = out.setdefault(name, [None] * len(of_row))
            for i, v in zip(rows, values, strict=True):
                column[i] = v
    return out


def _rows(conn, batches, rejections, std, recorded_at, latest=None):
    """Rows of the accepted batches, versioned against what is stored and against each other:
    (report ids per batch, stored keys to unset, report rows, observation rows)."""
    latest = dict(latest) if latest is not None else _latest(conn, batches, rejections)
    stored = set(latest)  # only a stored version can need its current flag cleared in the table
    std_rows = zip(*(std[c] for c in terminology.STD_COLUMNS), strict=True)
    report_rows: list[list[Any]] = []
    obs_rows: list[tuple] = []
    touched: dict[str, set[str]] = {}
    earlier: dict[tuple[str, str], list[int]] = {}  # (institution, key) → rows of this call
    ids: dict[int, list[str]] = {}
    for n, batch in enumerate(batches):
        if rejections[n] is not None:  # skip its standardised rows too
            for _, item in batch.items:
                for _ in item.observations:
                    next(std_rows)
            continue
        mine = ids[n] = []
        for patient_id, item in batch.items:
            at = (batch.institution_id, item.key)
            issued = item.issued_at or batch.fallback_issued
            prior = latest.get(at)
            current = item.status != "cancelled" and (prior is None or issued >= prior.issued_at)
            if current or item.status == "cancelled":
                if at in stored:
                    touched.setdefault(batch.institution_id, set()).add(item.key)
                for row in earlier.get(at, ()):  # an earlier version from this same call
                    report_rows[row][3] = False
            version = prior.version + 1 if prior else 1
            latest[at] = Latest(version, max(issued, prior.issued_at) if prior else issued)
            rid = uuid.uuid4().hex
            earlier.setdefault(at, []).append(len(report_rows))
            report_rows.append(
                _report_row(rid, patient_id, item, (version, current, issued), batch, recorded_at)
            )
            obs_rows += _observation_rows(rid, patient_id, item, issued, std_rows)
            mine.append(rid)
    return ids, touched, [tuple(r) for r in report_rows], obs_rows


# PostgreSQL: (institution, report key) pairs passed as two arrays
_PAIRS = "(institution_id, report_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
_LATEST = f"SELECT institution_id, report_key, version, issued_at FROM reports WHERE {_PAIRS}"
_UNSET_CURRENT = f"UPDATE reports SET current = false WHERE current AND {_PAIRS}"
# the same, and the report store's inserts, for a libpq pipeline (``rhip.store.pq``)
_LATEST_PQ, _UNSET_CURRENT_PQ = numbered(_LATEST), numbered(_UNSET_CURRENT)
_REPORT_ROWS = JsonRows(reports, REPORT_COLUMNS)
_FINDING_ROWS = JsonRows(quality_findings, FINDING_COLUMNS)
_OBSERVATION_ROWS = JsonRows(observations, OBSERVATION_COLUMNS)


def _latest(conn: Connection, batches, rejections) -> dict[tuple[str, str], Latest]:
    """(institution, report key) → the newest stored version, for the accepted batches' keys."""
    accepted = [b for b, r in zip(batches, rejections, strict=True) if r is None]
    if not accepted:
        return {}
    if conn.dialect.name == "postgresql":  # pairs as two arrays, nothing to compile
        with inbox.driver_cursor(conn) as cur:
            cur.execute(_LATEST, _pair_arrays(accepted))
            return _newest(cur.fetchall())
    keys: dict[str, set[str]] = {}
    for batch in accepted:
        keys.setdefault(batch.institution_id, set()).update(k for _, k in _keys(batch))
    t = reports.c
    cond = or_(*(and_(t.institution_id == iid, t.report_key.in_(sorted(ks)))
                 for iid, ks in sorted(keys.items())))  # fmt: skip
    rows = conn.execute(select(t.institution_id, t.report_key, t.version, t.issued_at).where(cond))
    return _newest(rows)


def send_latest(pipe: Pipeline, batches: Sequence[Batch]) -> None:
    """PostgreSQL: ask for the stored versions of ``batches``' reports in a libpq pipeline; its
    rows give ``read_latest``."""
    pipe.send(b"rhip_latest_versions", _LATEST_PQ, _pair_arrays(batches))


def read_latest(rows) -> dict[tuple[str, str], Latest]:
    """``send_latest``'s rows (text) as the newest stored version per key."""
    return _newest((iid, key, int(v), timestamp(at)) for iid, key, v, at in rows)


def _pair_arrays(batches: Sequence[Batch]) -> list[list[str]]:
    """The batches' (institution, report key) pairs as two arrays."""
    by_institution: dict[str, set[str]] = {}
    for batch in batches:
        by_institution.setdefault(batch.institution_id, set()).update(k for _, k in _keys(batch))
    return _key_arrays(by_institution.items())


def _key_arrays(keys) -> list[list[str]]:
    """(institution, its keys) as two parallel arrays, sorted: the ``_PAIRS`` parameters."""
    pairs = [(iid, k) for iid, ks in sorted(keys) for k in sorted(ks)]
    return [[p[0] for p in pairs], [p[1] for p in pairs]]


def _newest(rows) -> dict[tuple[str, str], Latest]:
    out: dict[tuple[str, str], Latest] = {}
    for iid, key, version, issued in rows:
        known = out.get((iid, key))
        newest = max(issued, known.issued_at) if known else issued
        out[(iid, key)] = Latest(max(version, known.version if known else 0), newest)
    return out


def _keys(batch: Batch):
    return ((batch.institution_id, item.key) for _, item in batch.items)


def _report_row(rid, patient_id, item: ReportIn, state, batch: Batch, recorded_at) -> list[Any]:
    version, current, issued = state
    findings, conclusion = item.narrative() if item.kind == "exam" else (None, None)
    return [
        rid, item.key[:200], version, current, patient_id, batch.institution_id, item.kind,
        item.code_system, item.code, item.display, item.status, item.placer_number,
        item.filler_number, item.specimen, findings, conclusion, item.collected_at, issued,
        batch.inbox_id, recorded_at,
    ]  # fmt: skip


def _observation_rows(rid: str, patient_id: str, item: ReportIn, issued, std) -> list[tuple]:
    rows = []
    for o in item.observations:
        v = o.value
        rows.append((
            rid, patient_id, o.seq, o.code_system, o.code, o.display, v.type, v.num,
            v.comparator, v.text, v.code, o.unit, o.reference_range, o.abnormal_flag, o.status,
            o.observed_at or item.collected_at or issued, *next(std),
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
