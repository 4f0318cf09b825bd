"""MPI queries: parameters, the matcher's index from the database, golden records, identifiers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, and_, func, or_, select

from rhip.identity.matcher import OnlineMatcher
from rhip.identity.models import identifiers, parameters, persons, registrations
from rhip.identity.normalise import fold_name, is_latin_name, name_key
from rhip.identity.schemas import Identifier, PersonPublic
from rhip.identity.scoring import MatchParameters
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault

R, P, ID = registrations.c, persons.c, identifiers.c
MATCH_SELECT = (
    R.name_folded,
    R.name_pinyin,
    R.birth_iso,
    R.sex,
    R.phone_key,
    R.address_key,
    R.district_code,
)
LIVE = ("active", "provisional")


def load_parameters(conn: Connection) -> MatchParameters:
    """The newest stored Fellegi–Sunter parameters, or the defaults when none were estimated."""
    row = conn.execute(
        select(parameters.c.params).order_by(parameters.c.id.desc()).limit(1)
    ).first()
    return MatchParameters.from_json(row[0]) if row else MatchParameters.default()


def _doc_rows(conn: Connection, where) -> list[tuple[str, str]]:
    """(registration id, matcher document key) for passports, permits, insurance cards."""
    docs = [systems.PASSPORT, systems.HKMO_PERMIT, systems.TW_PERMIT, systems.INSURANCE_CARD]
    rows = conn.execute(
        select(ID.registration_id, ID.system, ID.value, ID.value_hash)
        .join(registrations, R.id == ID.registration_id)
        .join(persons, P.id == R.person_id)
        .where(ID.system.in_(docs), where)
    )
    return [(reg, h or f"{system}|{value}") for reg, system, value, h in rows]


def prime_matcher(
    conn: Connection,
    params: MatchParameters,
    where=None,
) -> tuple[OnlineMatcher, list[str], list[str]]:
    """An online matcher holding the registrations selected by ``where`` (all live ones if None).

    Returns the matcher, its person index → person id, and registration index → registration id.
    """
    cond = P.status.in_(LIVE) if where is None else and_(P.status.in_(LIVE), where)
    query = (
        select(R.id, R.person_id, P.rid_hash, R.mrn_system, R.mrn, *MATCH_SELECT)
        .join(persons, P.id == R.person_id)
        .where(cond)
        .order_by(R.registered_at, R.id)
    )
    matcher = OnlineMatcher(params)
    person_ids: list[str] = []
    person_index: dict[str, int] = {}
    reg_ids: list[str] = []
    docs_by_reg: dict[str, list[str]] = {}
    for reg, doc in _doc_rows(conn, cond):
        docs_by_reg.setdefault(reg, []).append(doc)
    for reg_id, person_id, rid_hash, mrn_system, mrn, *rec in conn.execute(query):
        person = person_index.get(person_id)
        if person is None:
            person = person_index[person_id] = matcher.new_person(rid_hash or "")
            person_ids.append(person_id)
        docs = docs_by_reg.get(reg_id, [])
        if mrn:
            docs = [*docs, f"{mrn_system}|{mrn}"]
        matcher.add(tuple(v or "" for v in rec), person, "", docs)
        reg_ids.append(reg_id)
    return matcher, person_ids, reg_ids


def candidate_clause(rec: tuple, rid_hash: str, doc_keys: Iterable[str]):
    """Registrations sharing a blocking key with ``rec`` (the SQL twin of ``block_keys``)."""
    _, pinyin, born, sex, phone = rec[:5]
    clauses = []
    if born:
        clauses.append(and_(R.birth_iso == born, R.sex == sex))
        if pinyin:
            year = born[:4]
            clauses.append(
                and_(R.name_pinyin == pinyin, R.birth_iso >= year, R.birth_iso < f"{int(year) + 1}")
            )
    elif pinyin:
        clauses.append(R.name_pinyin == pinyin)
    if phone:
        clauses.append(R.phone_key == phone)
    if rid_hash:
        clauses.append(P.rid_hash == rid_hash)
    mrn_keys = [k.split("|", 1) for k in doc_keys if k.startswith(systems.MRN_PREFIX)]
    for system, value in mrn_keys:
        clauses.append(and_(R.mrn_system == system, R.mrn == value))
    hashed = [k for k in doc_keys if not k.startswith(systems.MRN_PREFIX)]
    if hashed:
        sub = select(ID.registration_id).where(
            or_(ID.value_hash.in_(hashed), (ID.system + "|" + ID.value).in_(hashed))
        )
        clauses.append(R.id.in_(sub))
    return or_(*clauses) if clauses else None


def identifier_clause(vault: IdentifierVault, system: str | None, value: str):
    """Identifier rows with this value (any system when ``system`` is None, as FHIR tokens do)."""
    value = canonical_value(system, value)
    if system is not None:
        if system in systems.SENSITIVE:
            return and_(ID.system == system, ID.value_hash == vault.hash(system, value))
        return and_(ID.system == system, ID.value == value)
    hashes = [vault.hash(s, canonical_value(s, value)) for s in sorted(systems.SENSITIVE)]
    return or_(ID.value == value, ID.value_hash.in_(hashes))


def canonical_value(system: str | None, value: str) -> str:
    """Resident IDs compare upper-case without spaces; other identifiers as given."""
    if system == systems.RESIDENT_ID:
        return value.replace(" ", "").upper()
    return value.strip()


def persons_with_identifier(conn: Connection, clause) -> list[str]:
    rows = conn.execute(
        select(R.person_id).distinct().join(identifiers, ID.registration_id == R.id).where(clause)
    )
    return [r[0] for r in rows]


def person_rows(conn: Connection, ids: list[str]) -> list[PersonPublic]:
    """Golden records with the identifiers of all their registrations (sensitive ones decrypted)."""
    if not ids:
        return []
    rows = conn.execute(select(persons).where(P.id.in_(ids))).mappings().all()
    by_id = {
        r["id"]: PersonPublic(**{k: r[k] for k in PersonPublic.model_fields if k in r})
        for r in rows
    }
    return [by_id[i] for i in ids if i in by_id]


def attach_identifiers(
    conn: Connection, vault: IdentifierVault, people: list[PersonPublic]
) -> None:
    if not people:
        return
    rows = conn.execute(
        select(R.person_id, ID.system, ID.type_code, ID.value, ID.value_enc)
        .join(registrations, R.id == ID.registration_id)
        .where(R.person_id.in_([p.id for p in people]))
        .order_by(ID.id)
    )
    seen: set[tuple[str, str, str]] = set()
    by_person = {p.id: p for p in people}
    for person_id, system, type_code, value, enc in rows:
        clear = value if value is not None else vault.decrypt(enc)
        if (person_id, system, clear) not in seen:
            seen.add((person_id, system, clear))
            by_person[person_id].identifiers.append(
                Identifier(system=system, value=clear, type_code=type_code)
            )


def search_clause(name: str | None, birthdate: dt.date | None, gender: str | None):
    """Registrations whose name starts with ``name`` (characters, folded, or pinyin), etc."""
    clauses = []
    if name:
        folded = fold_name(name)
        field = R.name_pinyin if is_latin_name(folded) else R.name_folded
        text = name_key(name) if is_latin_name(folded) else folded
        clauses.append(
            or_(field.startswith(text, autoescape=True), R.name_pinyin == name_key(name))
        )
    if birthdate:
        clauses.append(R.birth_iso == birthdate.isoformat())
    if gender:
        clauses.append(R.sex == gender)
    return and_(*clauses) if clauses else None


def count_and_page(conn: Connection, where, offset: int, count: int) -> tuple[int, list[str]]:
    ids = (
        select(R.person_id).distinct().join(persons, P.id == R.person_id).where(P.status.in_(LIVE))
    )
    if where is not None:
        ids = ids.where(where)
    total = conn.execute(select(func.count()).select_from(ids.subquery())).scalar_one()
    page = conn.execute(ids.order_by(R.person_id).offset(offset).limit(count)).scalars().all()
    return total, list(page)
