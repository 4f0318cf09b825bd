"""The durable inbox (收件箱): every inbound message, stored raw before it is acknowledged.

A message from a verified sender takes an idempotency key (channel, sender, control id); a
second message with the same key is a *duplicate*: stored for the record, never applied again,
and answered with the original's acknowledgement. Failed messages keep their error and bytes and
can be re-processed (``rhip.exchange.service.retry``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update

from rhip.exchange.errors import InboxError
from rhip.exchange.models import INBOX_STATUSES, inbox_messages
from rhip.kernel.clock import now
from rhip.store.pq import JsonRows, Pipeline, numbered

MAX_ERROR = 4000  # characters of error text kept


@dataclass(frozen=True, slots=True)
class Arrival:
    """One inbound message as it arrived."""

    raw: bytes
    channel: str
    peer: str = ""
    sender: str = ""
    control_id: str | None = None
    message_type: str | None = None
    size: int | None = None  # bytes received, when ``raw`` is only a prefix
    received_at: dt.datetime | None = None


def dedup_key(channel: str, sender: str, control_id: str) -> str:
    return f"{channel}|{sender}|{control_id}"


def _values(arrival: Arrival) -> dict[str, Any]:
    size = arrival.size if arrival.size is not None else len(arrival.raw)
    return {
        "channel": arrival.channel,
        "sender": arrival.sender[:64],
        "peer": arrival.peer[:64],
        "control_id": (arrival.control_id or None) and arrival.control_id[:200],
        "message_type": (arrival.message_type or None) and arrival.message_type[:32],
        "raw": arrival.raw,
        "size": size,
        "truncated": size > len(arrival.raw),
        "received_at": arrival.received_at or now(),
        "attempts": 0,
    }


def values_of(arrival: Arrival) -> dict[str, Any]:
    """The inbox columns an arrival fills (status, ack and outcome are the caller's)."""
    return _values(arrival)


def allocate_ids(conn: Connection, n: int) -> list[int]:
    """``n`` new inbox ids from the table's sequence (PostgreSQL): a group commit knows its
    messages' ids before it writes them, so reports can reference their inbox row.
    """
    rows = conn.execute(
        text(
            "SELECT nextval(pg_get_serial_sequence('inbox_messages', 'id')) "
            "FROM generate_series(1, :n)"
        ),
        {"n": n},
    ).scalars()
    return list(rows)


class IdPool:
    """Inbox ids taken from the sequence ``block`` at a time (one query per block, not one per
    batch). Ids are only ever used once; a block left unused at exit is a gap, as after any
    rolled-back insert.
    """

    def __init__(self, block: int = 256):
        self.block = block
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def take(self, conn: Connection, n: int) -> list[int]:
        with self._lock:
            if len(self._ids) < n:
                self._ids += allocate_ids(conn, max(n, self.block))
            out, self._ids = self._ids[:n], self._ids[n:]
            return out


def taken_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are already stored (their messages are duplicates)."""
    if not keys:
        return set()
    if conn.dialect.name == "postgresql":  # one array parameter: no statement to compile
        with driver_cursor(conn) as cur:
            cur.execute(_TAKEN_KEYS, [list(keys)])
            return {r[0] for r in cur.fetchall()}
    found = conn.execute(
        select(inbox_messages.c.dedup_key).where(inbox_messages.c.dedup_key.in_(list(keys)))
    )
    return set(found.scalars())


def send_taken(pipe: Pipeline, keys: Sequence[str]) -> None:
    """``taken_keys`` queued in a libpq pipeline (PostgreSQL); its rows are the keys taken."""
    pipe.send(b"rhip_taken_keys", _TAKEN_KEYS_PQ, [list(keys)])


_TAKEN_KEYS = "SELECT dedup_key FROM inbox_messages WHERE dedup_key = ANY(%s::text[])"
_TAKEN_KEYS_PQ = numbered(_TAKEN_KEYS)


def driver_cursor(conn: Connection):
    """A psycopg cursor in ``conn``'s transaction (begun if need be, so that the caller's
    ``conn.commit()`` commits what the cursor writes): for hot statements with array
    parameters, which SQLAlchemy would compile per call."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection.cursor()


# inbox columns of a finished message, in ``insert_outcomes``' statement order
_OUTCOME_COLUMNS = (
    "id", "channel", "sender", "peer", "control_id", "message_type", "raw", "size", "truncated",
    "received_at", "attempts", "status", "error", "ack", "ack_code", "dedup_key",
    "institution_id", "patient_id", "processed_at",
)  # fmt: skip
_INSERT_OUTCOME = (
    f"INSERT INTO inbox_messages ({', '.join(_OUTCOME_COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in _OUTCOME_COLUMNS)}) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)


# the pipelined group commit's rows; it commits in the same round trip: there a taken key
# must fail the statement (and so the commit) rather than be skipped
_OUTCOME_ROWS = JsonRows(inbox_messages, _OUTCOME_COLUMNS)


def insert_outcomes(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert finished messages (explicit ids, final status, ACK) in one round trip; a row whose
    key is already stored (a duplicate, or another transaction took it meanwhile) is skipped.
    Returns the ids written.

    PostgreSQL: psycopg's ``executemany`` (pipeline mode, one prepared statement, each row's
    values dumped by the C adapters): for the few rows of a group commit about three times less
    CPU than one ``unnest`` of an array per column, whose dumping runs in Python.
    """
    if not rows:
        return set()
    params = [tuple(row.get(c) for c in _OUTCOME_COLUMNS) for row in rows]
    written: set[int] = set()
    with driver_cursor(conn) as cur:
        cur.executemany(_INSERT_OUTCOME, params, returning=True)
        while True:
            written.update(r[0] for r in cur.fetchall())
            if not cur.nextset():
                return written


def send_outcomes(pipe: Pipeline, rows: Sequence[dict[str, Any]]) -> None:
    """``insert_outcomes`` queued in a libpq pipeline, as one statement (``JsonRows``). A key
    already taken (another transaction stored the message meanwhile) fails it with a unique
    violation, which aborts the pipeline's transaction: the caller rolls back and re-runs the
    batch by ``insert_outcomes``, which skips such rows."""
    _OUTCOME_ROWS.send(pipe, [tuple(row.get(c) for c in _OUTCOME_COLUMNS) for row in rows])


def set_patients(conn: Connection, patients: dict[int, str]) -> None:
    """Set the golden patient of messages just applied, in one statement."""
    if patients:
        conn.execute(
            update(inbox_messages)
            .where(inbox_messages.c.id == bindparam("mid"))
            .values(patient_id=bindparam("pid")),
            [{"mid": k, "pid": v} for k, v in patients.items()],
        )


def store_received(conn: Connection, arrival: Arrival, key: str | None) -> int:
    """Insert a message to be processed. A taken ``key`` (a duplicate) raises IntegrityError:
    call it in a transaction of its own, which a unique violation ends on PostgreSQL.
    """
    return conn.execute(
        insert(inbox_messages)
        .values(**_values(arrival), status="received", dedup_key=key)
        .returning(inbox_messages.c.id)
    ).scalar_one()


def store_processed(
    conn: Connection, arrival: Arrival, key: str, institution_id: str, ack_code: str
) -> int:
    """Insert a message with its outcome, in the transaction that applies it: its raw bytes are
    written once (a later status update would copy them again, on SQLite the whole row). A taken
    ``key`` (a duplicate) raises IntegrityError, as ``store_received`` does."""
    values = {
        **_values(arrival), "attempts": 1, "status": "processed", "dedup_key": key,
        "ack_code": ack_code, "institution_id": institution_id, "processed_at": now(),
    }  # fmt: skip
    stmt = insert(inbox_messages).values(**values).returning(inbox_messages.c.id)
    return conn.execute(stmt).scalar_one()


def store_failed(
    conn: Connection,
    arrival: Arrival,
    error: str,
    ack: bytes | None,
    code: str,
    institution_id: str | None = None,
):
    """Insert a message that failed before it could be processed (refused, truncated, a bad
    NDJSON line); ``institution_id`` when the sender is verified (its scorecard counts it)."""
    return conn.execute(
        insert(inbox_messages)
        .values(
            **_values(arrival),
            institution_id=institution_id,
            status="failed",
            error=error[:MAX_ERROR],
            ack=ack,
            ack_code=code or None,
            processed_at=now(),
        )
        .returning(inbox_messages.c.id)
    ).scalar_one()


def store_duplicate(conn: Connection, arrival: Arrival, original: dict[str, Any]) -> int:
    """Record a resend of ``original``, answered with the original's acknowledgement."""
    return conn.execute(
        insert(inbox_messages)
        .values(
            **_values(arrival),
            status="duplicate",
            duplicate_of=original["id"],
            institution_id=original["institution_id"],
            ack=original["ack"],
            ack_code=original["ack_code"],
            patient_id=original["patient_id"],
            processed_at=now(),
        )
        .returning(inbox_messages.c.id)
    ).scalar_one()


def by_key(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(inbox_messages).where(inbox_messages.c.dedup_key == key)).first()
    return dict(row._mapping) if row else None


def get(conn: Connection, message_id: int) -> dict[str, Any]:
    row = conn.execute(select(inbox_messages).where(inbox_messages.c.id == message_id)).first()
    if row is None:
        raise InboxError(f"no inbox message {message_id}", code="not-found")
    return dict(row._mapping)


def claim(conn: Connection, message_id: int, statuses: Sequence[str] = ("received",)) -> bool:
    """Take the message for processing in ``conn``'s transaction; False if it is not in
    ``statuses`` any more (another worker got there first). On PostgreSQL the row stays locked
    until the transaction ends, so two workers never apply one message.
    """
    result = conn.execute(
        update(inbox_messages)
        .where(inbox_messages.c.id == message_id, inbox_messages.c.status.in_(statuses))
        .values(attempts=inbox_messages.c.attempts + 1)
    )
    return result.rowcount == 1


def mark(conn: Connection, message_id: int, status: str, *, count_attempt=False, **values: Any):
    """Set the outcome of processing: processed or failed, with ACK, error and patient."""
    if status not in INBOX_STATUSES:
        raise ValueError(status)
    if values.get("error"):
        values["error"] = values["error"][:MAX_ERROR]
    if count_attempt:  # the claim that counted it was rolled back with the failed work
        values["attempts"] = inbox_messages.c.attempts + 1
    conn.execute(
        update(inbox_messages)
        .where(inbox_messages.c.id == message_id)
        .values(status=status, processed_at=now(), **values)
    )


def set_key(conn: Connection, message_id: int, key: str) -> None:
    """Give a message its idempotency key late (a retried refusal). A taken key raises
    IntegrityError: call it in a transaction of its own, like ``store_received``.
    """
    conn.execute(
        update(inbox_messages).where(inbox_messages.c.id == message_id).values(dedup_key=key)
    )


def list_messages(
    engine: Engine,
    *,
    status: str | None = None,
    sender: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first, without the raw bytes: what an operator's list shows."""
    cols = [c for c in inbox_messages.c if c.name not in ("raw", "ack")]
    query = select(*cols).order_by(inbox_messages.c.id.desc()).limit(min(limit, 1000))
    if status:
        if status not in INBOX_STATUSES:
            raise InboxError(
                f"unknown inbox status {status!r}; one of {', '.join(INBOX_STATUSES)}",
                code="value",
            )
        query = query.where(inbox_messages.c.status == status)
    if sender:
        query = query.where(inbox_messages.c.sender == sender)
    if before_id:
        query = query.where(inbox_messages.c.id < before_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def counts(engine: Engine) -> dict[str, int]:
    """Messages per status."""
    query = select(inbox_messages.c.status, func.count()).group_by(inbox_messages.c.status)
    with engine.connect() as conn:
        return {status: n for status, n in conn.execute(query)}
