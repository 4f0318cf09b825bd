"""Storing a chunk's columns (批量入库): ``reports.store_many`` for ``bulk_map.Mapped`` columns.

The same steps as ``store_many`` with one batch per line — terminology (``standardise_columns``),
quality (``check_many``, each line its own message), versioning against what is stored (one
prior-versions query per chunk) and against earlier lines, one current-flag update, one
COPY/executemany per table, warnings and scorecard — without building a ``ReportIn`` or a row
object per report. Lines a quality rule refuses, and lines whose subject cannot be resolved,
leave the columns for the per-line path, which names their errors as before.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Connection, and_, select, update

from rhip import quality
from rhip.exchange import terminology
from rhip.exchange.bulk_map import Mapped
from rhip.exchange.fhir_ingest import Channel
from rhip.exchange.fhir_refs import _look_up
from rhip.exchange.models import observations
from rhip.exchange.models import reports as reports_table
from rhip.exchange.reports import OBSERVATION_COLUMNS, REPORT_COLUMNS
from rhip.kernel.errors import RhipError
from rhip.quality.frames import OBSERVATION_COLUMNS as Q_OBS
from rhip.quality.frames import REPORT_COLUMNS as Q_REPORTS
from rhip.quality.frames import Columns, Frames
from rhip.store import bulk_insert


def resolve(channel: Channel, mapped: Mapped) -> None:
    """Golden patients by subject reference (``channel.known`` first, one look-up per distinct
    new reference); a line whose reference fails goes to the fallback, which says why."""
    refs = mapped.reports["patient_ref"]
    unknown = sorted({r for r in refs if r not in channel.known})
    failed: set[str] = set()
    if unknown:
        with channel.engine.connect() as conn:
            for ref in unknown:
                try:
                    channel.known[ref] = _look_up(channel, conn, ref, "")
                except RhipError:
                    failed.add(ref)
    mapped.drop({k for k, r in enumerate(refs) if r in failed})
    mapped.reports["patient_id"] = [channel.known[r] for r in mapped.reports["patient_ref"]]


def check(conn: Connection, institution_id: str, mapped: Mapped, recorded_at: dt.datetime):
    """Terminology and quality over the columns: (standard columns, each line's findings).

    Lines with an error finding are sent to the fallback (``mapped.drop``); the standard
    columns and findings returned are those of the lines kept.
    """
    std, findings = _check(conn, institution_id, mapped, recorded_at)
    rejected = {k for k, f in enumerate(findings) if f.rejection() is not None}
    if rejected:
        mapped.drop(rejected)
        std, findings = _check(conn, institution_id, mapped, recorded_at)
    return std, findings


def _check(conn, institution_id, mapped: Mapped, recorded_at):
    r, o, n = mapped.reports, mapped.observations, len(mapped)
    units = _texts(o["unit"])
    std = terminology.standardise_columns(
        conn, institution_id, o["code"], o["code_system"], o["num"], units
    )
    none, lab = [None] * n, ["lab"] * n
    report_cols = dict(zip(Q_REPORTS, (
        list(range(n)), [0] * n, r["patient_id"], r["key"], lab, r["code"], r["code_system"],
        r["status"], r["collected_at"], r["issued_at"], none, none, none,
    ), strict=True))  # fmt: skip
    m = len(o["report"])
    of = o["report"]
    patient = list(map(r["patient_id"].__getitem__, of))
    obs_cols = dict(zip(Q_OBS, (
        of, [0] * m, [s - 1 for s in o["seq"]], patient, ["lab"] * m, o["code"],
        o["code_system"], o["value_type"], o["num"], _texts(o["text"]), units,
        _texts(o["reference_range"]), o["observed_at"], [None] * m, [None] * m, [None] * m,
    ), strict=True))  # fmt: skip
    frames = Frames(Columns(report_cols, n, n), Columns(obs_cols, m, n), n)
    ctx = quality.QualityContext(institution_id, recorded_at)
    return std, quality.check_many(frames.with_standard(std), ctx)


def _texts(values: list) -> list:
    return [v if v and v.strip() else None for v in values]  # as quality.frames._text


def write(
    conn: Connection,
    mapped: Mapped,
    checked,
    institution_id: str,
    inbox_id: int | None,
    recorded_at: dt.datetime,
) -> int:
    """Store the mapped lines not already stored (same key, status, issued time: a resend);
    returns how many reports were written."""
    std, findings = checked
    r = mapped.reports
    n = len(mapped)
    keys = [k[:200] for k in r["key"]]
    issued = [i or recorded_at for i in r["issued_at"]]
    stored = _stored(conn, institution_id, sorted(set(keys)))
    fresh = [
        k for k in range(n) if (keys[k], r["status"][k], r["issued_at"][k]) not in stored["same"]
    ]
    if not fresh:
        return 0
    latest = stored["latest"]
    prior_keys = set(latest)  # only a stored version can need its current flag cleared
    rid = [""] * n
    version, current = [0] * n, [False] * n
    earlier: dict[str, list[int]] = {}  # key → its rows of this chunk
    for k in fresh:
        key, status = keys[k], r["status"][k]
        prior = latest.get(key)
        now_current = status != "cancelled" and (prior is None or issued[k] >= prior[1])
        if now_current or status == "cancelled":
            for row in earlier.get(key, ()):  # an earlier version from this same chunk
                current[row] = False
        version[k] = prior[0] + 1 if prior else 1
        current[k] = now_current
        latest[key] = (version[k], max(issued[k], prior[1]) if prior else issued[k])
        earlier.setdefault(key, []).append(k)
        rid[k] = uuid.uuid4().hex
    touched = sorted(
        {keys[k] for k in fresh if current[k] or r["status"][k] == "cancelled"} & prior_keys
    )
    if touched:
        t = reports_table.c
        conn.execute(
            update(reports_table)
            .where(t.institution_id == institution_id, t.report_key.in_(touched), t.current)
            .values(current=False)
        )
    report_rows = [
        (rid[k], keys[k], version[k], current[k], r["patient_id"][k], institution_id, "lab",
         r["code_system"][k], r["code"][k], r["display"][k], r["status"][k],
         r["placer_number"][k], r["filler_number"][k], None, None, None, r["collected_at"][k],
         issued[k], inbox_id, recorded_at)
        for k in fresh
    ]  # fmt: skip
    # binary COPY on PostgreSQL, as ``reports.store_many``: the values have the columns' types
    bulk_insert(conn, reports_table, report_rows, REPORT_COLUMNS, binary=True)
    bulk_insert(conn, observations, _observation_rows(mapped, std, fresh, rid, issued),
                OBSERVATION_COLUMNS, binary=True)  # fmt: skip
    kept = [(institution_id, findings[k], [rid[k]]) for k in fresh]
    quality.record_many(conn, recorded_at, kept)
    return len(fresh)


def _observation_rows(mapped: Mapped, std, fresh: list[int], rid: list[str], issued: list):
    """The observation rows of the ``fresh`` reports, zipped from whole columns: report id,
    patient, the mapped values, observed time (else the report's collection, else issue time)
    and terminology's standard columns."""
    r, o = mapped.reports, mapped.observations
    of = o["report"]
    if len(fresh) == len(mapped):  # the usual case: every report is new

        def pick(col: list) -> list:
            return col

    else:  # some reports were stored before (a resend): not their results
        keep = set(fresh)
        rows = [i for i, k in enumerate(of) if k in keep]

        def pick(col: list) -> list:
            return [col[i] for i in rows]

    at = [c or i for c, i in zip(r["collected_at"], issued, strict=True)]
    cols = [
        pick(list(map(rid.__getitem__, of))), pick(list(map(r["patient_id"].__getitem__, of))),
        *(pick(o[c]) for c in _OBS_VALUES),
        pick([t or at[k] for t, k in zip(o["observed_at"], of, strict=True)]),
        *(pick(std[c]) for c in terminology.STD_COLUMNS),
    ]  # fmt: skip
    return list(zip(*cols, strict=True))


# mapped observation columns in ``reports.OBSERVATION_COLUMNS`` order (report id and patient
# before them, observed time and the standard columns after)
_OBS_VALUES = (
    "seq", "code_system", "code", "display", "value_type", "num", "comparator", "text",
    "value_code", "unit", "reference_range", "abnormal_flag", "status",
)  # fmt: skip


def _stored(conn: Connection, institution_id: str, keys: list[str]) -> dict:
    """One query: stored (key, status, issued) versions, and each key's newest version."""
    t = reports_table.c
    rows = conn.execute(
        select(t.report_key, t.status, t.issued_at, t.version).where(
            and_(t.institution_id == institution_id, t.report_key.in_(keys))
        )
    )
    same: set[tuple] = set()
    latest: dict[str, tuple[int, dt.datetime]] = {}
    for key, status, issued, version in rows:
        at = _utc(issued)
        same.add((key, status, at))
        known = latest.get(key)
        latest[key] = (max(version, known[0]), max(at, known[1])) if known else (version, at)
    return {"same": same, "latest": latest}


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
