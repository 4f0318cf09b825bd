"""What each accepted HL7 v2 message type does, applied inside the message's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from rhip.exchange import reports
from rhip.exchange.adt import ADT_HANDLERS
from rhip.exchange.errors import ContentError, Location, as_v2_error
from rhip.exchange.hl7v2 import Envelope, V2Message, parse_ts
from rhip.exchange.oru import read_oru
from rhip.exchange.patients import PatientRegistration, PatientResolver
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.errors import RhipError
from rhip.quality import QualityRejected


@dataclass(frozen=True, slots=True)
class Context:
    """What a message handler may use besides the message and the transaction."""

    sender: Sender
    inbox_id: int
    envelope: Envelope
    resolver: PatientResolver


# A handler reads a parsed message and resolves its patients (reads only, and the MPI, which may
# commit on its own connection), then returns the function that writes the message's records in
# the caller's transaction and returns the golden patient id. Two phases, so that no write lock
# of the message's transaction is held while the MPI writes (SQLite has one writer).
Apply = Callable[[Connection], "str | None"]
Handler = Callable[[Connection, V2Message, Context], Apply]


def resolve(conn: Connection, ctx: Context, reg: PatientRegistration, pid_seq: int) -> str:
    """The golden patient for ``reg`` via the MPI; its errors become ACK errors at PID-3."""
    try:
        return ctx.resolver(conn, reg)
    except RhipError as exc:
        error = as_v2_error(exc)
        if error.location is None:
            error.location = Location("PID", pid_seq, 3)
            error.expression = error.location.expression()
        raise error from None


def oru_r01(conn: Connection, msg: V2Message, ctx: Context) -> Apply:
    """ORU^R01 observation results (检验/检查报告) → report versions and observations."""
    groups = read_oru(msg, ctx.sender)
    msh = msg.segments[0]
    sent = parse_ts(msh.get(7), Location("MSH", 1, 7))
    items, gender = [], {}
    for seq, group in enumerate(groups, start=1):
        patient_id = resolve(conn, ctx, group.patient, seq)
        gender[patient_id] = group.patient.gender
        items += [(patient_id, report) for report in group.reports]
    batch = reports.Batch(
        ctx.sender.institution_id, items, sent or now(), ctx.inbox_id, gender=gender
    )
    return StoreReports(batch)


@dataclass(frozen=True, slots=True)
class StoreReports:
    """The apply of a results message: store its batch of reports. The group commit stores the
    batches of many messages with one ``reports.store_many`` instead of calling each."""

    batch: reports.Batch

    @property
    def patient(self) -> str | None:
        return self.batch.items[0][0] if self.batch.items else None

    def __call__(self, tx: Connection) -> str | None:
        try:
            reports.store(tx, self.batch, recorded_at=now())
        except QualityRejected as exc:
            raise rejected(exc, self.batch) from None
        return self.patient


def rejected(exc: QualityRejected, batch: reports.Batch) -> ContentError:
    """A quality rejection as an ACK error: ERR-2 at the failing field (or its OBR), ERR-3 the
    rule's table 0357 code, ERR-8 every failing rule with its reason.
    """
    if exc.location is not None:
        segment, sequence, field_no = exc.location
        location = Location(segment, sequence, field_no, 1)
    else:
        location = batch.items[exc.findings[0].item][1].obr
    return ContentError(exc.message, location=location, hl7_code=exc.hl7_code)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("ORU", "R01"): oru_r01,
    **ADT_HANDLERS,  # ADT^A01/A04/A08 registration and update, ADT^A40 merge (rhip.exchange.adt)
}
