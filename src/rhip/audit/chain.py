"""The access log's hash chain (哈希链): append in the caller's transaction, verify by streaming.

Each event's ``hash`` is HMAC-SHA256, under a key derived from ``Settings.secret_key``, of its
canonical content including ``seq`` and the previous event's hash. A changed event breaks its own
hash, a deleted one breaks the sequence and the next ``prev_hash``, and the newest events cut off
disagree with ``audit_head`` (count and last hash). Someone with write access to the database but
not the secret cannot rebuild the chain.

Appending takes the head row's lock (``UPDATE … RETURNING``: on PostgreSQL a row lock held to the
caller's commit, on SQLite the database write lock), so concurrent writers get consecutive seqs.
Call it last in the transaction, after the read, so the lock is held for one round trip only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from rhip.audit.models import audit_events, audit_head
from rhip.audit.schemas import AuditEventIn, VerifyResult
from rhip.kernel import clock

GENESIS = "0" * 64
HEAD_ID = 1
CHAINED = (
    "seq", "recorded_at", "day", "action", "subtype", "user_id", "username", "agent_name",
    "role",
    "institution_id", "patient_id", "purpose", "resource", "query", "outcome", "status",
    "reason", "flagged", "client_address", "prev_hash",
)  # fmt: skip


def chain_key(secret: str) -> bytes:
    """The HMAC key of the chain, derived from ``Settings.secret_key``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"rhip audit chain")
    return hkdf.derive(secret.encode())


def digest(key: bytes, row: dict) -> str:
    """HMAC of an event row's chained fields in a fixed, canonical serialisation."""
    values = []
    for name in CHAINED:
        v = row[name]
        if isinstance(v, dt.datetime):
            v = v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(v, dt.date):
            v = v.isoformat()
        values.append(v)
    msg = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def append(conn: Connection, key: bytes, events: Sequence[AuditEventIn]) -> list[int]:
    """Append ``events`` to the chain within ``conn``'s transaction; returns their seqs.

    Two statements on PostgreSQL (lock-and-advance the head; insert the events and set the
    head's hash together), three on SQLite.
    """
    if not events:
        return []
    count, prev = _advance_head(conn, len(events))
    at = clock.now()
    day = at.astimezone(clock.CST).date()
    rows = []
    for i, event in enumerate(events):
        row = _row(event, count - len(events) + 1 + i, at, day, prev)
        row["hash"] = prev = digest(key, row)
        rows.append(row)
    head = (
        update(audit_head).where(audit_head.c.id == HEAD_ID).values(last_hash=prev, updated_at=at)
    )
    if conn.dialect.name == "postgresql":
        conn.execute(head.add_cte(insert(audit_events).values(rows).cte("ins")))
    else:
        conn.execute(insert(audit_events), rows)
        conn.execute(head)
    return [r["seq"] for r in rows]


def record(engine: Engine, key: bytes, events: Sequence[AuditEventIn]) -> list[int]:
    """Append in a transaction of its own (for refusals, where no read follows)."""
    with engine.begin() as conn:
        return append(conn, key, events)


def _advance_head(conn: Connection, n: int) -> tuple[int, str]:
    """Lock the head, add ``n`` to its count; the new count and the hash before."""
    stmt = (
        update(audit_head)
        .where(audit_head.c.id == HEAD_ID)
        .values(count=audit_head.c.count + n)
        .returning(audit_head.c.count, audit_head.c.last_hash)
    )
    got = conn.execute(stmt).first()
    if got is None:  # first event ever (or after a reset): create the head, race-safe
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(audit_head)
            .values(id=HEAD_ID, count=0, last_hash=GENESIS, updated_at=clock.now())
            .on_conflict_do_nothing(index_elements=["id"])
        )
        got = conn.execute(stmt).one()
    return got[0], got[1]


def _row(event: AuditEventIn, seq: int, at: dt.datetime, day: dt.date, prev: str) -> dict:
    return {
        "seq": seq,
        "recorded_at": at,
        "day": day,
        "action": event.action,
        "subtype": event.subtype,
        "user_id": event.user_id,
        "username": event.username,
        "agent_name": event.agent_name,
        "role": event.role,
        "institution_id": event.institution_id,
        "patient_id": event.patient_id,
        "purpose": event.purpose,
        "resource": event.resource,
        "query": event.query,
        "outcome": event.outcome,
        "status": event.status,
        "reason": event.reason,
        "flagged": event.flagged,
        "client_address": event.client_address,
        "prev_hash": prev,
    }


def verify(engine: Engine, key: bytes, batch: int = 5000) -> VerifyResult:
    """Stream the log in seq order (keyset pages of ``batch``) recomputing every hash, then
    compare with the head. Returns the first broken seq, if any."""
    expected, prev = 1, GENESIS
    cols = [audit_events.c[n] for n in (*CHAINED, "hash")]
    with engine.connect() as conn:
        while True:
            page = conn.execute(
                select(*cols)
                .where(audit_events.c.seq >= expected)
                .order_by(audit_events.c.seq)
                .limit(batch)
            ).all()
            for r in page:
                row = r._asdict()
                problem = _check(key, row, expected, prev)
                if problem:
                    return VerifyResult(False, expected - 1, None, problem[0], problem[1])
                expected, prev = expected + 1, row["hash"]
            if len(page) < batch:
                break
        head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).first()
    return _against_head(head, expected - 1, prev)


def _check(key: bytes, row: dict, expected: int, prev: str) -> tuple[int, str] | None:
    if row["seq"] != expected:
        return expected, f"event {expected} is missing (next stored is {row['seq']})"
    if row["prev_hash"] != prev:
        return expected, f"event {expected} does not chain to event {expected - 1}"
    if digest(key, row) != row["hash"]:
        return expected, f"event {expected} was changed (hash does not match its content)"
    return None


def _against_head(row, count: int, last_hash: str) -> VerifyResult:
    if row is None:
        if count == 0:
            return VerifyResult(True, 0, None)
        return VerifyResult(False, count, None, 1, "the chain head is missing")
    head = row._mapping  # not row.count: that is tuple.count
    kept, kept_hash = head["count"], head["last_hash"]
    if kept > count:
        return VerifyResult(
            False, count, kept, count + 1,
            f"the head records {kept} events but the log ends at {count}: "
            f"events {count + 1}..{kept} were deleted",
        )  # fmt: skip
    if kept < count:
        return VerifyResult(
            False, count, kept, kept + 1, f"events after {kept} were added outside the writer"
        )
    if kept_hash != last_hash:
        return VerifyResult(False, count, kept, count, f"event {count} differs from the head")
    return VerifyResult(True, count, kept)
