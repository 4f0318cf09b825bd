"""HL7 v2 ingest (消息接入): sender, parse, patient, store, and the ACK last, only once the
outcome is committed.

On PostgreSQL, ``V2Ingest.receive_many(frames)`` stores and applies messages that arrived together
in one transaction (group commit, ``rhip.exchange.groupcommit``): each message's raw inbox row and
its reports are committed together, so one commit makes both durable. On SQLite (one writer) each
message is stored first and processed in a second transaction. ``receive(raw, peer)`` is a batch
of one; ``retry(ids)`` runs stored messages through the per-message path again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rhip.exchange import inbox, terminology
from rhip.exchange.ack import build_ack
from rhip.exchange.errors import (
    INTERNAL_ERROR,
    UNSUPPORTED_EVENT,
    Location,
    Refused,
    UnsupportedMessage,
    V2Error,
    as_v2_error,
)
from rhip.exchange.groupcommit import FrameIn, receive_batch
from rhip.exchange.handlers import HANDLERS, Context, Handler
from rhip.exchange.hl7v2 import Envelope, read_envelope
from rhip.exchange.inbox import Arrival
from rhip.exchange.patients import PatientResolver, mpi_resolver
from rhip.exchange.senders import Sender, SenderCache, authorise
from rhip.exchange.v2fast import parse
from rhip.kernel.clock import now
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import RhipError
from rhip.kernel.settings import Settings
from rhip.quality.service import ScorecardTally

log = logging.getLogger("rhip.exchange")

CHANNEL = "mllp"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # one message; a lab batch of thousands of OBX fits easily
TOO_LONG = "104"  # HL7 table 0357 (v2.6+): value too long


def handler_for(env: Envelope) -> Handler:
    fn = HANDLERS.get((env.message_code, env.trigger))
    if fn is not None:
        return fn
    accepted = ", ".join(sorted(f"{c}^{t}" for c, t in HANDLERS))
    known_code = any(c == env.message_code for c, _ in HANDLERS)
    raise UnsupportedMessage(
        f"message type {env.message_type} is not accepted; rhip accepts {accepted}",
        location=Location("MSH", 1, 9, 1, 2 if known_code else 1),
        hl7_code=UNSUPPORTED_EVENT if known_code else "200",
    )


@dataclass(frozen=True, slots=True)
class RetryResult:
    id: int
    status: str  # processed | failed | duplicate | skipped
    ack_code: str | None
    error: str | None


class V2Ingest:
    """The HL7 v2 path into the platform for one database.

    On SQLite, writes are serialised by a lock (one writer at a time is SQLite's model anyway);
    on PostgreSQL, batches from different threads are processed concurrently. Registry rows of
    senders are cached for ``sender_ttl`` seconds. ``scorecard_every`` (PostgreSQL): write the
    quality scorecard counts every so many seconds instead of in each message's transaction.
    """

    def __init__(
        self,
        engine: Engine,
        resolver: PatientResolver | None = None,
        *,
        vault: IdentifierVault | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        sender_ttl: float = 5.0,
        scorecard_every: float | None = None,
    ):
        self.engine = engine
        self.senders = SenderCache(sender_ttl)
        # default: the MPI, with the vault of the configured secret (RHIP_SECRET_KEY)
        self.resolver = resolver or mpi_resolver(vault or IdentifierVault(Settings().secret_key))
        self.max_bytes = max_bytes
        sqlite = engine.dialect.name == "sqlite"
        self._lock = threading.Lock() if sqlite else contextlib.nullcontext()
        self.group_commit = not sqlite
        self.ids = inbox.IdPool()  # group commit: inbox ids known before the rows are written
        # group commit: scorecard counts summed in memory, written every so many seconds by
        # ``flush_scorecard`` (statistics only may lag; see ScorecardTally); None: with each
        # message's transaction
        every = scorecard_every if self.group_commit else None
        self.scorecard = ScorecardTally(every) if every is not None else None
        # the UCUM registry takes ~1 s to build: not on the first message's clock
        threading.Thread(target=terminology.warm, name="ucum-warm", daemon=True).start()

    # -- entry points ---------------------------------------------------------------------
    def receive(self, raw: bytes, peer: str, *, size: int | None = None) -> bytes:
        """Store, process and acknowledge one message; returns the ACK to send.

        ``size`` is the full length when ``raw`` is only its first bytes (an oversize frame).
        Raises only when the database cannot be written: then nothing may be acknowledged.
        """
        return self.receive_many([(raw, peer, size)])[0]

    def receive_many(
        self, frames: Sequence[FrameIn], conn: Connection | None = None
    ) -> list[bytes]:
        """Store, process and acknowledge messages (``(raw, peer, size)``); ACKs in order.

        PostgreSQL: one transaction for all (group commit), on ``conn`` if given (a connection
        the caller keeps between batches, out of any transaction); SQLite: one after the other.
        """
        if self.group_commit:
            return receive_batch(self, frames, conn)
        return [self._receive_one(raw, peer, size) for raw, peer, size in frames]

    def _receive_one(self, raw: bytes, peer: str, size: int | None) -> bytes:
        arrival = Arrival(raw, CHANNEL, peer, size=size, received_at=now())
        env = _envelope_or_none(raw)
        if env is not None:
            arrival = dataclasses.replace(
                arrival,
                sender=env.sender_codes[0],
                control_id=env.control_id,
                message_type=env.message_type,
            )
        total = size if size is not None else len(raw)
        if total > self.max_bytes:
            return self._refuse(arrival, env, _too_long(total, self.max_bytes, len(raw)))
        if env is None:
            try:
                read_envelope(raw)
            except Refused as exc:
                return self._refuse(arrival, None, exc)
        try:
            sender, message_id, key = self._admit(arrival, env, peer)
        except V2Error as exc:
            return self._refuse(arrival, env, exc)
        if message_id is None:
            return self._duplicate(dataclasses.replace(arrival, sender=sender.credit_code), key)
        return self._process(message_id, raw, env, sender)

    def flush_scorecard(self, *, force: bool = False) -> None:
        """Write the tallied scorecard counts if ``every`` seconds have passed (or ``force``)."""
        if self.scorecard is not None and (force or self.scorecard.due()):
            self.scorecard.flush(self.engine)

    def store_unacknowledged(self, raw: bytes, peer: str, reason: str, size: int | None = None):
        """Keep bytes that can get no ACK (a frame cut off, bytes outside any frame) as failed."""
        env = _envelope_or_none(raw)
        arrival = Arrival(
            raw, CHANNEL, peer,
            sender=env.sender_codes[0] if env else "",
            control_id=env.control_id if env else None,
            message_type=env.message_type if env else None,
            size=size, received_at=now(),
        )  # fmt: skip
        with self._lock, self.engine.begin() as conn:
            return inbox.store_failed(conn, arrival, reason, None, "")

    def retry(self, ids: Iterable[int]) -> list[RetryResult]:
        """Run failed (or interrupted) messages again; each gets its own transaction."""
        return [self._retry_one(int(i)) for i in ids]

    # -- steps ------------------------------------------------------------------------------
    def _admit(self, arrival: Arrival, env: Envelope, peer: str):
        """Check the sender and store the message in one transaction: (sender, id, key), id
        None for a duplicate. SenderRefused passes through to be stored as a refusal.
        """
        with self._lock, self.engine.connect() as conn:
            sender = authorise(conn, env.sender_codes, peer, self.senders)
            key = inbox.dedup_key(CHANNEL, sender.credit_code, env.control_id)
            arrival = dataclasses.replace(arrival, sender=sender.credit_code)
            try:
                message_id = inbox.store_received(conn, arrival, key)
            except IntegrityError:
                conn.rollback()
                return sender, None, key
            conn.commit()
            return sender, message_id, key

    def _refuse(self, arrival: Arrival, env: Envelope | None, exc: V2Error) -> bytes:
        ack = build_ack(env, exc.ack_code, [exc])
        with self._lock, self.engine.begin() as conn:
            inbox.store_failed(conn, arrival, exc.message, ack, exc.ack_code)
        return ack

    def _duplicate(self, arrival: Arrival, key: str) -> bytes:
        with self._lock, self.engine.begin() as conn:
            original = inbox.by_key(conn, key)
        if original is None:  # the key's holder vanished: impossible unless rows are deleted
            raise RuntimeError(f"inbox key {key!r} taken but not found")
        if original["status"] == "received":  # interrupted before processing: finish it now
            env = read_envelope(original["raw"])
            with self._lock, self.engine.begin() as conn:
                sender = authorise(conn, env.sender_codes, None, self.senders)
            self._process(original["id"], original["raw"], env, sender)
            with self._lock, self.engine.begin() as conn:
                original = inbox.get(conn, original["id"])
        with self._lock, self.engine.begin() as conn:
            inbox.store_duplicate(conn, arrival, original)
        return original["ack"]

    def _process(
        self,
        message_id: int,
        raw: bytes,
        env: Envelope,
        sender: Sender,
        statuses: tuple[str, ...] = ("received",),
    ) -> bytes:
        """Apply the message and record the outcome; one transaction for all it writes."""
        ctx = Context(sender, message_id, env, self.resolver)
        try:
            with self._lock, self.engine.begin() as conn:
                apply = handler_for(env)(conn, parse(raw, env), ctx)  # reads, resolves
                if not inbox.claim(conn, message_id, statuses):
                    return inbox.get(conn, message_id)["ack"]  # another worker finished it
                patient_id = apply(conn)
                ack = build_ack(env, "AA")
                inbox.mark(
                    conn, message_id, "processed",
                    ack=ack, ack_code="AA", error=None, patient_id=patient_id,
                    institution_id=sender.institution_id, sender=sender.credit_code,
                )  # fmt: skip
            return ack
        except RhipError as exc:
            error = as_v2_error(exc)
        except Exception as exc:  # a bug or an outage: the sender gets AE 207, the log the trace
            log.exception("inbox message %s: processing failed", message_id)
            error = V2Error(
                f"application internal error ({exc.__class__.__name__}); the message is kept "
                f"as inbox message {message_id} and will be re-processed",
                hl7_code=INTERNAL_ERROR,
            )
        ack = build_ack(env, error.ack_code, [error])
        with self._lock, self.engine.begin() as conn:
            inbox.mark(
                conn, message_id, "failed",
                count_attempt=True, ack=ack, ack_code=error.ack_code, error=error.message,
                institution_id=sender.institution_id, sender=sender.credit_code,
            )  # fmt: skip
        return ack

    def _retry_one(self, message_id: int) -> RetryResult:
        with self._lock, self.engine.begin() as conn:
            row = inbox.get(conn, message_id)
        if row["status"] not in ("failed", "received"):
            return RetryResult(message_id, "skipped", row["ack_code"], f"status {row['status']}")
        if row["channel"] != CHANNEL or row["truncated"]:
            why = "only a prefix was kept" if row["truncated"] else f"channel {row['channel']}"
            return RetryResult(message_id, "skipped", row["ack_code"], f"cannot retry: {why}")
        try:
            env = read_envelope(row["raw"])
            with self._lock, self.engine.begin() as conn:
                sender = authorise(conn, env.sender_codes, row["peer"] or None)
        except V2Error as exc:
            return self._refail(message_id, exc, _envelope_or_none(row["raw"]))
        key = inbox.dedup_key(CHANNEL, sender.credit_code, env.control_id)
        if row["dedup_key"] is None and not self._set_key(message_id, key):
            with self._lock, self.engine.begin() as conn:
                original = inbox.by_key(conn, key)
                inbox.mark(conn, message_id, "duplicate", duplicate_of=original["id"],
                           ack=original["ack"], ack_code=original["ack_code"])  # fmt: skip
            return RetryResult(message_id, "duplicate", original["ack_code"], None)
        self._process(message_id, row["raw"], env, sender, ("failed", "received"))
        with self._lock, self.engine.begin() as conn:
            row = inbox.get(conn, message_id)
        return RetryResult(message_id, row["status"], row["ack_code"], row["error"])

    def _set_key(self, message_id: int, key: str) -> bool:
        with self._lock, self.engine.connect() as conn:
            try:
                inbox.set_key(conn, message_id, key)
            except IntegrityError:
                conn.rollback()
                return False
            conn.commit()
            return True

    def _refail(self, message_id: int, exc: V2Error, env: Envelope | None) -> RetryResult:
        ack = build_ack(env, exc.ack_code, [exc])
        with self._lock, self.engine.begin() as conn:
            inbox.mark(conn, message_id, "failed", count_attempt=True, ack=ack,
                       ack_code=exc.ack_code, error=exc.message)  # fmt: skip
        return RetryResult(message_id, "failed", exc.ack_code, exc.message)


def _envelope_or_none(raw: bytes) -> Envelope | None:
    try:
        return read_envelope(raw)
    except Refused:
        return None


def _too_long(total: int, limit: int, kept: int) -> Refused:
    return Refused(
        f"the message has {total} bytes, over the limit of {limit}; the first {kept} bytes are "
        "kept in the inbox",
        location=Location("MSH", 1),
        hl7_code=TOO_LONG,
    )
