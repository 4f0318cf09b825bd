"""What each accepted HL7 v2 message type does, applied inside the message's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from rhip.exchange import reports
from rhip.exchange.errors import Location, as_v2_error
from rhip.exchange.hl7v2 import Envelope, V2Message, parse_ts
from rhip.exchange.oru import read_oru
from rhip.exchange.patients import PatientRegistration, PatientResolver
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.errors import RhipError


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
    items = []
    for seq, group in enumerate(groups, start=1):
        patient_id = resolve(conn, ctx, group.patient, seq)
        items += [(patient_id, report) for report in group.reports]
    batch = reports.Batch(ctx.sender.institution_id, items, sent or now(), ctx.inbox_id)

    def apply(tx: Connection) -> str | None:
        reports.store(tx, batch, recorded_at=now())
        return items[0][0] if items else None

    return apply


HANDLERS: dict[tuple[str, str], Handler] = {
    ("ORU", "R01"): oru_r01,
}
