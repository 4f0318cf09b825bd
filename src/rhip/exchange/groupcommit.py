"""Group commit (成组提交) of HL7 v2 messages on PostgreSQL: messages that arrive together, on any
connections, are stored and applied in one transaction, and each ACK is sent after that commit.

Each message's inbox row is written once, with its final status, raw bytes and ACK, in the same
transaction as its reports: the commit that makes the result durable makes the raw message durable
too, so the ACK still means "kept". One commit (one WAL flush) serves the whole batch.

Isolation per message: what can fail for one message alone (sender, parse, content, patient) is
decided before the transaction and written as that message's failed row. If the transaction
itself fails, the batch is re-run one message per transaction, and a message that fails alone is
stored raw as failed (AE 207) in a small transaction of its own; batch-mates are unaffected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Connection

from rhip import quality
from rhip.exchange import inbox
from rhip.exchange.ack import build_ack
from rhip.exchange.errors import INTERNAL_ERROR, Refused, V2Error, as_v2_error
from rhip.exchange.handlers import Apply, Context, StoreReports, rejected
from rhip.exchange.hl7v2 import Envelope, read_envelope
from rhip.exchange.inbox import Arrival
from rhip.exchange.models import observations
from rhip.exchange.reports import (
    OBSERVATION_COLUMNS,
    prepare_many,
    read_latest,
    send_latest,
    send_prepared,
    store_many,
)
from rhip.exchange.senders import Sender, authorise
from rhip.exchange.v2fast import parse
from rhip.kernel.clock import now
from rhip.kernel.errors import RhipError
from rhip.quality.service import ScorecardTally
from rhip.store import bulk_insert
from rhip.store.pq import Pipeline

if TYPE_CHECKING:
    from rhip.exchange.ingest import V2Ingest

log = logging.getLogger("rhip.exchange")

# one frame as the listener hands it over: (bytes, peer address, full size if only a head)
FrameIn = tuple[bytes, str, "int | None"]


@dataclass(slots=True)
class Item:
    """One message of a batch and what has been decided about it so far."""

    arrival: Arrival
    env: Envelope | None
    row: dict[str, Any] | None = None  # the inbox row to write, once its outcome is known
    sender: Sender | None = None
    key: str | None = None
    apply: Apply | None = None
    duplicate: bool = False
    ack: bytes | None = None


def receive_batch(
    ingest: V2Ingest, frames: Sequence[FrameIn], conn: Connection | None = None
) -> list[bytes]:
    """Store, apply and acknowledge ``frames`` with one commit; the ACKs in frame order.

    ``conn``: a connection kept by the caller (the listener's worker), out of any transaction;
    by default one from the pool. Raises only when the database cannot be written: then nothing
    may be acknowledged.
    """
    with contextlib.nullcontext(conn) if conn is not None else ingest.engine.connect() as conn:
        items = [_admit(ingest, conn, *frame) for frame in frames]
        latest = None
        if conn.dialect.name == "postgresql" and _reports_only(items):
            latest = _read_then_prefetch(ingest, conn, items)
        else:
            _find_duplicates(conn, items)
            _number_and_read(ingest, conn, [i for i in items if not i.duplicate])
        todo = [i for i in items if not i.duplicate]
        # the writes follow in the read phase's transaction (READ COMMITTED: each statement sees
        # what is committed when it runs); no commit or BEGIN between them
        try:
            _commit(conn, todo, ingest.scorecard, latest)
        except Exception:
            conn.rollback()
            if len(todo) <= 1:
                _fail_alone(conn, todo)
            else:
                log.warning("group commit of %d messages failed; one by one", len(todo))
                for item in todo:
                    _commit_alone(conn, item, ingest.scorecard)
        if conn.in_transaction():  # a kept connection is handed back idle
            conn.rollback()
    for item in items:
        if item.duplicate:
            arrival = dataclasses.replace(item.arrival, sender=item.sender.credit_code)
            item.ack = ingest._duplicate(arrival, item.key)
    return [item.ack for item in items]


def _admit(ingest: V2Ingest, conn: Connection, raw: bytes, peer: str, size: int | None) -> Item:
    """Envelope, size and sender checks: a refused message gets its failed row and AR here."""
    from rhip.exchange.ingest import CHANNEL, _envelope_or_none, _too_long

    arrival = Arrival(raw, CHANNEL, peer, size=size, received_at=now())
    env = _envelope_or_none(raw)
    if env is not None:
        arrival = dataclasses.replace(
            arrival, sender=env.sender_codes[0], control_id=env.control_id,
            message_type=env.message_type,
        )  # fmt: skip
    item = Item(arrival, env)
    total = size if size is not None else len(raw)
    try:
        if total > ingest.max_bytes:
            raise _too_long(total, ingest.max_bytes, len(raw))
        if env is None:
            read_envelope(raw)  # raises the Refused that explains why
        item.sender = authorise(conn, env.sender_codes, peer, ingest.senders)
    except (Refused, V2Error) as exc:
        _outcome(item, exc.message, build_ack(env, exc.ack_code, [exc]), exc.ack_code, 0)
        return item
    item.key = inbox.dedup_key(CHANNEL, item.sender.credit_code, env.control_id)
    item.arrival = dataclasses.replace(arrival, sender=item.sender.credit_code)
    return item


def _find_duplicates(conn: Connection, items: list[Item], taken: set[str] | None = None) -> None:
    """Keys already stored (``taken``, else asked for here), or repeated within the batch:
    answered as duplicates after commit. Checked before the read phase when that may write (the
    MPI applies an ADT's patient there); a key taken by another transaction meanwhile is caught
    when the rows are written (``insert_outcomes``)."""
    keyed = [i for i in items if i.key is not None]
    if taken is None:
        taken = inbox.taken_keys(conn, [i.key for i in keyed])
    for item in keyed:
        item.duplicate = item.key in taken
        taken.add(item.key)


def _number_and_read(ingest: V2Ingest, conn: Connection, items: list[Item]) -> None:
    """Inbox ids (from an in-process pool: one sequence query per block, no commit), then each
    message's read phase."""
    for item, mid in zip(items, ingest.ids.take(conn, len(items)), strict=True):
        item.row = item.row or {}
        item.row["id"] = mid
    for item in items:
        if item.apply is None and item.sender is not None:
            _read(ingest, conn, item)


def _pipeline(conn: Connection, *, first: bool = False) -> Pipeline:
    """A libpq pipeline on ``conn``, in its transaction (begun if need be: the BEGIN goes in the
    same round trip; ``conn.commit()`` commits it). The transaction's statements run generic
    plans (``Pipeline.generic_plans``): set by the pipeline that begins it, or by the batch's
    ``first`` one when a look-up before it began it."""
    if not conn.in_transaction():
        conn.begin()
    pipe = Pipeline(conn.connection.driver_connection)
    if pipe.begin_if_idle() or first:
        pipe.generic_plans()
    return pipe


def _reports_only(items: list[Item]) -> bool:
    """Every message is an ORU or already refused: their read phases write nothing on the
    batch's connection (a patient the MPI has to register is registered on a connection of its
    own), so they may run before the duplicate check."""
    return all(i.sender is None or i.env.message_code == "ORU" for i in items)


def _read_then_prefetch(ingest: V2Ingest, conn: Connection, items: list[Item]) -> dict:
    """A batch of reports: every message read first, then one libpq round trip (with the
    transaction's BEGIN) for the keys already stored and the reports' stored versions. A
    duplicate's read is wasted work, and duplicates are rare. Returns the versions."""
    _number_and_read(ingest, conn, items)
    batches = [i.apply.batch for i in items if isinstance(i.apply, StoreReports)]
    keys = [i.key for i in items if i.key is not None]
    for attempt in (1, 2):
        pipe = _pipeline(conn, first=True)
        inbox.send_taken(pipe, keys)
        send_latest(pipe, batches)
        try:
            taken_rows, latest_rows = pipe.run()
            break
        except psycopg.errors.InvalidSqlStatementName:  # deallocated: prepared again now
            conn.rollback()  # the read phase only read
            if attempt == 2:
                raise
    _find_duplicates(conn, items, {key for (key,) in taken_rows})
    latest = read_latest(latest_rows)
    for item in items:
        if item.duplicate:
            item.apply = None
    return latest


def _read(ingest: V2Ingest, conn: Connection, item: Item) -> None:
    """Parse and run the handler's read phase (patients resolved); errors become the row."""
    from rhip.exchange.ingest import handler_for

    mid = item.row["id"]
    ctx = Context(item.sender, mid, item.env, ingest.resolver)
    try:
        item.apply = handler_for(item.env)(conn, parse(item.arrival.raw, item.env), ctx)
    except RhipError as exc:
        _failed(item, as_v2_error(exc))
    except Exception as exc:  # a bug or an outage: the sender gets AE 207, the log the trace
        log.exception("inbox message %s: processing failed", mid)
        _failed(item, _internal(exc, mid))
    else:
        ack = build_ack(item.env, "AA")
        _outcome(item, None, ack, "AA", 1, status="processed")
        if isinstance(item.apply, StoreReports):  # known now: written with the row
            item.row["patient_id"] = item.apply.patient


class _Rejected(Exception):
    """A message's own writes refused it (quality rules): its batch is re-run without it."""

    def __init__(self, item: Item, error: V2Error):
        self.item, self.error = item, error


class _Again(Exception):
    """The pipelined write met a key another transaction stored meanwhile: re-run the batch by
    the statement-by-statement path, which skips such messages as duplicates."""


def _commit(
    conn: Connection, items: list[Item], tally: ScorecardTally | None = None, latest=None
) -> None:
    """Write and commit ``items``; a message rejected while applying becomes a failed row and the
    transaction is re-run without its writes (batch-mates are not failed with it). ``latest``:
    the reports' stored versions, when already read in this transaction.
    """
    pipelined = conn.dialect.name == "postgresql"
    for _ in range(len(items) + 2):
        try:
            if pipelined and all(i.apply is None or isinstance(i.apply, StoreReports)
                                 for i in items):  # fmt: skip
                return _write_pipelined(conn, items, tally, latest)
            return _write(conn, items, tally)
        except _Rejected as exc:
            conn.rollback()
            exc.item.apply = None
            _failed(exc.item, exc.error)
        except _Again:
            conn.rollback()
            pipelined = False
    raise RuntimeError("group commit did not converge")  # each round removes one apply


def _write_pipelined(
    conn: Connection, items: list[Item], tally: ScorecardTally | None, latest=None
) -> None:
    """A batch of reports (the common case) in one round trip after the reads: the inbox rows,
    superseded versions, report rows, warnings and observations (as one JSON parameter), and
    the COMMIT, in one libpq pipeline (``rhip.store.pq``: psycopg's per-statement Python was a
    third of the listener's CPU, and its COPY took two round trips and a commit a third).
    Quality rejections are known before anything is written, so a refused message's inbox row
    goes in once, already failed. Any statement's error leaves the transaction aborted (the
    COMMIT is skipped): a key another transaction took meanwhile re-runs the batch by
    ``_write``.
    """
    stores = [i for i in items if isinstance(i.apply, StoreReports)]
    batches = [i.apply.batch for i in stores]
    prepared = prepare_many(conn, batches, recorded_at=now(), latest=latest)
    for item, out in zip(stores, prepared.outs, strict=True):
        if out.rejection is not None:
            _failed(item, as_v2_error(rejected(out.rejection, item.apply.batch)))
            item.apply = None
    pipe = _pipeline(conn)
    inbox.send_outcomes(pipe, [i.row for i in items])
    queued = send_prepared(pipe, prepared, observations=True)
    # the scorecard's counts go to the tally after the commit, or without one into the table
    # in this transaction: then the commit waits for them
    if queued and tally is not None:
        pipe.commit()
    try:
        pipe.run()
    except (psycopg.IntegrityError, psycopg.errors.InvalidSqlStatementName) as exc:
        raise _Again from exc  # a key taken meanwhile, or the statements deallocated
    if not queued:  # a number JSON cannot carry: the observations by COPY
        bulk_insert(conn, observations, prepared.obs_rows, OBSERVATION_COLUMNS, binary=True)
    if tally is None:
        quality.write_recording(conn, prepared.recording, None, warnings=False)
    conn.commit()  # after the pipeline's COMMIT only SQLAlchemy's bookkeeping: psycopg is idle
    if tally is not None:
        quality.write_recording(conn, prepared.recording, tally, warnings=False)
    for item in items:
        item.ack = item.row["ack"]


def _write(conn: Connection, items: list[Item], tally: ScorecardTally | None = None) -> None:
    """One transaction: every row, every applied message, the patients; then commit. Report
    batches of all messages are stored together (one ``reports.store_many``)."""
    written = inbox.insert_outcomes(conn, [i.row for i in items])
    patients = {}
    stores: list[Item] = []
    for item in items:
        if item.row["id"] not in written:  # another transaction took its key meanwhile
            item.duplicate, item.apply = True, None
            continue
        if isinstance(item.apply, StoreReports):
            stores.append(item)
        elif item.apply is not None:
            try:
                patient = item.apply(conn)
            except RhipError as exc:
                raise _Rejected(item, as_v2_error(exc)) from exc
            if patient:
                patients[item.row["id"]] = patient
    _store_reports(conn, stores, tally)
    inbox.set_patients(conn, patients)
    conn.commit()
    for item in items:
        if not item.duplicate:
            item.ack = item.row["ack"]


def _store_reports(conn: Connection, stores: list[Item], tally: ScorecardTally | None) -> None:
    """The messages' reports in one go; a message the quality rules refuse wrote nothing and
    its inbox row (already inserted as processed) becomes failed with its AE."""
    if not stores:
        return
    batches = [item.apply.batch for item in stores]
    outs = store_many(conn, batches, recorded_at=now(), tally=tally)
    for item, out in zip(stores, outs, strict=True):
        if out.rejection is not None:
            _failed(item, as_v2_error(rejected(out.rejection, item.apply.batch)))
            item.apply = None
            row = item.row
            inbox.mark(conn, row["id"], "failed", error=row["error"], ack=row["ack"],
                       ack_code=row["ack_code"], patient_id=None)  # fmt: skip


def _commit_alone(conn: Connection, item: Item, tally: ScorecardTally | None) -> None:
    try:
        _commit(conn, [item], tally)
    except Exception:
        conn.rollback()
        _fail_alone(conn, [item])


def _fail_alone(conn: Connection, items: list[Item]) -> None:
    """Store messages whose transaction failed raw as failed (AE 207); if even that cannot be
    written, the database is down: raise, so that nothing is acknowledged.
    """
    for item in items:
        if item.apply is not None:
            log.exception("inbox message %s: applying failed", item.row["id"])
            item.apply = None
            _failed(item, _internal(RuntimeError("write failed"), item.row["id"]))
        _write(conn, [item])


def _internal(exc: Exception, mid: int) -> V2Error:
    return V2Error(
        f"application internal error ({exc.__class__.__name__}); the message is kept as inbox "
        f"message {mid} and will be re-processed",
        hl7_code=INTERNAL_ERROR,
    )


def _failed(item: Item, error: V2Error) -> None:
    ack = build_ack(item.env, error.ack_code, [error])
    _outcome(item, error.message, ack, error.ack_code, 1)


def _outcome(item: Item, error, ack: bytes, code: str, attempts: int, status="failed") -> None:
    """The complete inbox row (every column, so rows insert in one statement)."""
    verified = item.sender is not None
    item.row = {
        **(item.row or {}),
        **inbox.values_of(item.arrival),
        "status": status,
        "error": error[: inbox.MAX_ERROR] if error else None,
        "ack": ack,
        "ack_code": code,
        "attempts": attempts,
        "dedup_key": item.key if verified else None,
        "institution_id": item.sender.institution_id if verified else None,
        "patient_id": None,
        "processed_at": now(),
    }
