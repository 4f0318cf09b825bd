"""Who a message is about: PID read into a registration, resolved to a golden patient by the MPI.

PID-3 identifiers that rhip can match on: the resident ID (居民身份证号, type ``NNCHN``), the
institution's medical record number (病历号/就诊卡号, type ``MR``, assigned by the facility in
PID-3.6 or PID-3.4, else the sender) and a passport (``PPN``). Others are ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection

from rhip.exchange.errors import (
    DATA_TYPE_ERROR,
    INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    ContentError,
    Location,
    V2Error,
)
from rhip.exchange.hl7v2 import Seg
from rhip.exchange.senders import Sender
from rhip.exchange.v2fast import FastSegment
from rhip.kernel import clock, systems
from rhip.kernel.clock import CST
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import InvalidInput
from rhip.kernel.ids import mask, validate_resident_id

GENDERS = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}
_ID_TYPES = {systems.HL7_RESIDENT_ID: systems.RESIDENT_ID, "PPN": systems.PASSPORT}
_CJK = re.compile("[\u4e00-\u9fff]")  # CJK unified ideographs: a name written in Chinese


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str


@dataclass(frozen=True, slots=True)
class PatientRegistration:
    """A patient as one institution registered them (患者登记), in the MPI's terms."""

    identifiers: tuple[Identifier, ...]
    source: Sender  # the institution that registered the patient
    name: str = ""
    gender: str | None = None  # FHIR administrative gender
    birth_date: dt.date | None = None
    phone: str = ""
    address: str = ""

    def value_of(self, system: str) -> str | None:
        return next((i.value for i in self.identifiers if i.system == system), None)


# resolves a registration to a golden patient id within the message's transaction
PatientResolver = Callable[[Connection, PatientRegistration], str]


def registration_from_pid(pid: Seg, sender: Sender) -> PatientRegistration:
    """Read PID into a registration; ContentError (AE) when it has no usable identifier.

    A patient's results come in runs (the several reports of one visit), so a read is
    remembered by the PID's text, the sender and the day (a resident ID's validity depends on
    it); a PID in error is read again each time, to name its field."""
    today = clock.today_cst()
    raw = pid.raw
    if not isinstance(raw, FastSegment):  # python-hl7's tree: read it, nothing to key on
        return _read_pid(pid, sender, today)
    key = (raw.separators, raw.esc, *raw.fields, sender, today)
    registration = _READ.get(key)
    if registration is None:
        registration = _read_pid(pid, sender, today)
        if len(_READ) >= _READ_MAX:
            _READ.clear()  # bounded: the patients of the hour refill it
        _READ[key] = registration
    return registration


_READ: dict[tuple, PatientRegistration] = {}  # immutable, so shared by the messages of a run
_READ_MAX = 4096


def _read_pid(pid: Seg, sender: Sender, today: dt.date) -> PatientRegistration:
    identifiers = []
    for rep in range(1, pid.reps(3) + 1):
        ident = _identifier(pid, rep, sender.credit_code, today)
        if ident is not None and ident not in identifiers:
            identifiers.append(ident)
    if not identifiers:
        raise ContentError(
            "the patient has no usable identifier: PID-3 needs a resident ID (type NNCHN), a "
            "medical record number (type MR) or a passport (type PPN)",
            location=pid.loc(3),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    born, sex, phone = pid.gets(7, 8, 13)
    sex = sex.upper()
    if sex and sex not in GENDERS:
        raise ContentError(
            f"PID-8 administrative sex {sex!r} is not in HL7 table 0001 (M, F, O, U, A, N)",
            location=pid.loc(8),
            hl7_code=TABLE_VALUE_NOT_FOUND,
        )
    born = pid.ts(7, born)
    street, _, city, province = pid.comps(11, 4)  # XAD.1, .3, .4
    return PatientRegistration(
        identifiers=tuple(identifiers),
        source=sender,
        name=_name(pid),
        gender=GENDERS.get(sex),
        birth_date=born.astimezone(CST).date() if born else None,
        phone=phone,
        address=" ".join(p for p in (province, city, street) if p),
    )


def _identifier(pid: Seg, rep: int, sender_code: str, today: dt.date) -> Identifier | None:
    # CX.1 the id, CX.4 its assigning authority, CX.5 its type, CX.6 the assigning facility
    value, _, _, authority, kind, facility = pid.comps(3, 6, rep)
    kind = kind.upper()
    if not value:
        return None
    if kind == systems.HL7_MRN:
        # the facility's credit code: HD.2 or HD.1 of CX.6, else of CX.4, else the sender's
        facility = next(
            (v for v in (pid.get(3, 6, 2, rep), facility, pid.get(3, 4, 2, rep), authority)
             if len(v) == 18 and v.isalnum()),
            sender_code,
        )  # fmt: skip
        return Identifier(systems.mrn_system(facility.upper()), value)
    if kind not in _ID_TYPES:
        return None
    if kind == systems.HL7_RESIDENT_ID:
        try:
            value = _resident_number(value, rep, today)
        except InvalidInput as exc:
            raise ContentError(
                exc.message, location=pid.loc(3, 1, rep), hl7_code=DATA_TYPE_ERROR
            ) from None
    return Identifier(_ID_TYPES[kind], value)


def _resident_number(value: str, rep: int, today: dt.date) -> str:
    """``validate_resident_id(value).number``, remembered per ID text and day (a patient's many
    messages carry the same ID; validity depends on today only through a future birth date)."""
    try:
        return _valid_resident_number(value, today)
    except InvalidInput:
        pass  # not cached: raised again with its field named
    return validate_resident_id(value, expression=f"PID-3[{rep}]", today=today).number


@lru_cache(maxsize=8192)
def _valid_resident_number(value: str, today: dt.date) -> str:
    return validate_resident_id(value, today=today).number


def _name(pid: Seg) -> str:
    family, given = pid.comps(5, 2)
    if _CJK.search(family + given):
        return family + given  # Chinese names are written without a space
    return " ".join(p for p in (given, family) if p)


def describe(reg: PatientRegistration) -> str:
    """The registration's identifiers for an error text, masked (never a resident ID in clear)."""
    parts = []
    for i in reg.identifiers:
        value = mask(i.value) if i.system in systems.SENSITIVE else i.value
        parts.append(f"{i.system.rsplit(':', 1)[-1]}={value}")
    return ", ".join(parts)


def registration_create(reg: PatientRegistration):
    """``reg`` as the MPI takes it (``rhip.identity.schemas.RegistrationCreate``)."""
    from rhip.identity import schemas  # at call time: parsing needs no MPI (see mpi_resolver)

    return schemas.RegistrationCreate(
        identifiers=[schemas.Identifier(system=i.system, value=i.value) for i in reg.identifiers],
        name=reg.name or None,
        gender=reg.gender,
        birth_date=reg.birth_date,
        phone=reg.phone or None,
        address=reg.address or None,
        institution_id=reg.source.institution_id,
    )


def mpi_resolver(vault: IdentifierVault) -> PatientResolver:
    """A resolver through the master patient index (``rhip.identity.service.register``).

    The MPI registers on its own connection and commits; a registration is idempotent (a known
    MRN returns its record), so a message that fails afterwards and is retried links the same.
    """

    def resolve(conn: Connection, reg: PatientRegistration) -> str:
        try:  # imported here: the MPI is optional for parsing and for tests with a stub
            from rhip.identity import service
        except ImportError:
            raise V2Error(
                "the master patient index is not available to resolve the patient",
                location=Location("PID", 1, 3),
                hl7_code=INTERNAL_ERROR,
            ) from None
        # the usual case, a patient the sender registered before: its MRN names the golden
        # person, read on the message's connection (what ``register`` answers for a known MRN)
        mrn = next((i for i in reg.identifiers if i.system.startswith(systems.MRN_PREFIX)), None)
        if mrn is not None and (known := service.person_of_mrn(conn, mrn.system, mrn.value)):
            return known
        return service.register(conn.engine, vault, registration_create(reg)).person_id

    resolve.vault = vault  # type: ignore[attr-defined]  # ADT update/merge hash with it
    return resolve
