"""ADT (患者登记/更新/合并) over HL7 v2: A01/A04 register, A08 update, A40 merge, via the MPI.

Handlers have the signature of ``handlers.oru_r01``: they read the message and do the MPI's work
(the MPI commits on its own connection, before the message's transaction takes write locks), then
return an ``Apply`` that only hands the golden patient id to the inbox row.

* A01 admit / A04 register: PID → registration at the sending institution. An MRN already
  registered there is treated as A08 (its demographics are updated), so a re-admission carries
  the current address and phone.
* A08 update: the registration with that MRN gets the new demographics
  (``rhip.identity.update.update_registration``); an unknown MRN is registered (as A04), as most
  platforms do.
* A40 merge: each PID (surviving MRN) with its MRG (MRG-1: the MRN merged away, both at the
  sender) merges the golden records behind them (``rhip.identity.linkage.merge``, with history, so
  ``unmerge`` undoes it). Already one record: nothing to do (a resend is harmless).

Every step is idempotent, so a message retried after a failure, or resent, ends the same.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select

from rhip.exchange import inbox
from rhip.exchange.errors import (
    INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    UNKNOWN_KEY,
    ContentError,
    Location,
    UnknownPatient,
    V2Error,
    as_v2_error,
)
from rhip.exchange.hl7v2 import Seg, V2Message
from rhip.exchange.models import inbox_messages
from rhip.exchange.patients import (
    PatientRegistration,
    registration_create,
    registration_from_pid,
)
from rhip.identity import linkage, service
from rhip.identity.models import registrations
from rhip.identity.update import update_registration
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import Conflict, NotFound, RhipError
from rhip.kernel.settings import Settings

if TYPE_CHECKING:  # handlers imports this module to register the handlers below
    from rhip.exchange.handlers import Apply, Context

R = registrations.c
_CJK = ("\u4e00", "\u9fff")
MAX_NAMES = 4  # PID-5 repetitions read: legal name, pinyin, alias …


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """The apply of an ADT message: the MPI work is done; the inbox row gets the golden id."""

    patient_id: str | None

    def __call__(self, tx: Connection) -> str | None:
        return self.patient_id


# a duplicate (its MSH-10 already stored) is answered by the inbox and never applied; ADT does
# its MPI work in the read phase, so it checks that itself rather than rely on when the caller
# finds duplicates (the group commit may learn it only when it inserts the row)
DUPLICATE = Resolved(None)


def adt_register(conn: Connection, msg: V2Message, ctx: Context) -> Apply:
    """ADT^A01 (入院登记) and ADT^A04 (门诊登记): register the PID, or update a known MRN."""
    if _duplicate(conn.engine, ctx):
        return DUPLICATE
    pid = _pid(msg)
    return Resolved(_upsert(conn.engine, _vault(ctx), _registration(pid, ctx), pid))


def adt_update(conn: Connection, msg: V2Message, ctx: Context) -> Apply:
    """ADT^A08 (更新患者信息): new demographics for the sender's MRN; unknown MRN → registered."""
    if _duplicate(conn.engine, ctx):
        return DUPLICATE
    pid = _pid(msg)
    reg = _registration(pid, ctx)
    _require_mrn(reg, pid)
    return Resolved(_upsert(conn.engine, _vault(ctx), reg, pid))


def adt_merge(conn: Connection, msg: V2Message, ctx: Context) -> Apply:
    """ADT^A40 (患者合并): each PID/MRG pair merges the MRG-1 MRN's golden record into the PID's."""
    engine, vault = conn.engine, _vault(ctx)
    if _duplicate(engine, ctx):
        return DUPLICATE
    pairs, pid = [], None
    for seg in msg.segments:
        if seg.name == "PID":
            pid = seg
        elif seg.name == "MRG":
            if pid is None:
                raise ContentError(
                    "MRG must follow the PID of the surviving patient",
                    location=seg.loc(),
                    hl7_code="100",
                )
            pairs.append((pid, seg))
    if not pairs:
        raise ContentError(
            "ADT^A40 needs an MRG segment naming the medical record number merged away (MRG-1)",
            location=Location("MRG", 1, 1),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    survivor = ""
    for pid, mrg in pairs:
        reg = _registration(pid, ctx)
        _require_mrn(reg, pid)
        survivor = _golden(engine, vault, reg, pid)
        subsumed = _prior(engine, mrg, ctx)
        _merge(engine, survivor, subsumed, mrg, ctx)
    return Resolved(survivor)


# -- steps --------------------------------------------------------------------------------------
def _duplicate(engine: Engine, ctx: Context) -> bool:
    """Another inbox row holds this message's key (own connection: no snapshot is held open)."""
    from rhip.exchange.ingest import CHANNEL  # ingest imports the handlers

    key = inbox.dedup_key(CHANNEL, ctx.sender.credit_code, ctx.envelope.control_id)
    m = inbox_messages.c
    with engine.connect() as conn:
        found = conn.execute(
            select(m.id).where(m.dedup_key == key, m.id != ctx.inbox_id).limit(1)
        ).first()
    return found is not None


def _pid(msg: V2Message) -> Seg:
    pid = msg.first("PID")
    if pid is None:
        raise ContentError(
            f"{msg.envelope.message_type} needs a PID segment",
            location=Location("PID", 1),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    return pid


def _registration(pid: Seg, ctx: Context) -> PatientRegistration:
    """PID read as for results, with the name of the first PID-5 repetition in characters (汉字),
    else the first one given (pinyin)."""
    reg = registration_from_pid(pid, ctx.sender)
    names = [_xpn(pid, rep) for rep in range(1, MAX_NAMES + 1)]  # a repetition may be empty
    names = [n for n in names if n]
    chinese = [n for n in names if any(_CJK[0] <= ch <= _CJK[1] for ch in n)]
    name = (chinese or names or [reg.name])[0]
    return dataclasses.replace(reg, name=name)


def _xpn(pid: Seg, rep: int) -> str:
    family, given = pid.get(5, 1, rep=rep), pid.get(5, 2, rep=rep)
    if any(_CJK[0] <= ch <= _CJK[1] for ch in family + given):
        return family + given  # Chinese names are written without a space
    return " ".join(p for p in (family.upper(), given) if p)  # ZHANG Wei


def _require_mrn(reg: PatientRegistration, pid: Seg) -> None:
    if not any(i.system.startswith(systems.MRN_PREFIX) for i in reg.identifiers):
        raise ContentError(
            f"PID-{pid.seq} needs the sender's medical record number (PID-3 type MR) for this "
            "event: the registration is found by it",
            location=pid.loc(3),
            hl7_code=REQUIRED_FIELD_MISSING,
        )


def _upsert(engine: Engine, vault: IdentifierVault, reg: PatientRegistration, pid: Seg) -> str:
    """Update the registration of a known MRN, else register; the golden id."""
    create = registration_create(reg)
    try:
        if create.mrn() is not None:
            try:
                return update_registration(engine, vault, create).person_id
            except NotFound:
                pass  # not registered yet: A08 of an unknown MRN is a registration
        return service.register(engine, vault, create).person_id
    except RhipError as exc:
        raise _at(exc, pid.loc(3)) from None


def _golden(engine: Engine, vault: IdentifierVault, reg: PatientRegistration, pid: Seg) -> str:
    """The golden record of the surviving MRN (registered from the PID if not yet known)."""
    try:
        return service.register(engine, vault, registration_create(reg)).person_id
    except RhipError as exc:
        raise _at(exc, pid.loc(3)) from None


def _prior(engine: Engine, mrg: Seg, ctx: Context) -> str:
    """The golden record behind MRG-1's MRN at the sender; AE 204 when it is not registered."""
    mrns = []
    for rep in range(1, mrg.reps(1) + 1):
        kind = mrg.get(1, 5, rep=rep).upper()
        if mrg.get(1, 1, rep=rep) and kind in ("", systems.HL7_MRN):
            facility = next(
                (v for v in (mrg.get(1, 6, 2, rep), mrg.get(1, 6, 1, rep), mrg.get(1, 4, 2, rep),
                             mrg.get(1, 4, 1, rep)) if len(v) == 18 and v.isalnum()),
                ctx.sender.credit_code,
            )  # fmt: skip
            mrns.append((systems.mrn_system(facility.upper()), mrg.get(1, 1, rep=rep), rep))
    if not mrns:
        raise ContentError(
            "MRG-1 needs the medical record number merged away (type MR)",
            location=mrg.loc(1, 1),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    with engine.connect() as conn:
        for system, value, _ in mrns:
            person = conn.execute(
                select(R.person_id).where(R.mrn_system == system, R.mrn == value)
            ).scalar()
            if person is not None:
                return person
    raise UnknownPatient(
        f"MRG-1 medical record number {mrns[0][1]} is not registered for this institution",
        location=mrg.loc(1, 1, mrns[0][2]),
        hl7_code=UNKNOWN_KEY,
    )


def _merge(engine: Engine, survivor: str, subsumed: str, mrg: Seg, ctx: Context) -> None:
    if survivor == subsumed:
        return  # already one golden record (or merged by an earlier delivery)
    try:
        linkage.merge(
            engine, survivor, subsumed,
            reason=f"ADT^A40 inbox message {ctx.inbox_id}", actor=ctx.sender.credit_code,
        )  # fmt: skip
    except Conflict as exc:
        raise V2Error(
            "merge refused: the two patients carry different resident IDs, so the MPI keeps "
            f"them apart ({exc.message}); correct the resident ID (ADT^A08) or ask the platform "
            "operator to merge them by hand",
            location=mrg.loc(1, 1),
            hl7_code=INTERNAL_ERROR,
        ) from None
    except RhipError as exc:
        raise _at(exc, mrg.loc(1, 1)) from None


def _at(exc: RhipError, location: Location) -> V2Error:
    error = as_v2_error(exc)
    if error.location is None:
        error.location = location
        error.expression = location.expression()
    return error


def _vault(ctx: Context) -> IdentifierVault:
    """The vault of the MPI resolver (``patients.mpi_resolver`` exposes it), else the
    configured one: ADT must hash resident IDs with the key the results path uses."""
    vault = getattr(ctx.resolver, "vault", None)
    return vault if isinstance(vault, IdentifierVault) else IdentifierVault(Settings().secret_key)


# the (message code, trigger) → handler entries ``handlers.HANDLERS`` takes in
ADT_HANDLERS = {
    ("ADT", "A01"): adt_register,
    ("ADT", "A04"): adt_register,
    ("ADT", "A08"): adt_update,
    ("ADT", "A40"): adt_merge,
}
