"""Updating a registration (ADT^A08): demographics, kept values, and when the link moves."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from rhip.identity import linkage, service
from rhip.identity.models import persons, registrations
from rhip.identity.schemas import Identifier, RegistrationCreate
from rhip.identity.update import update_registration
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import InvalidInput, NotFound

RID = "440305199003120026"  # born 1990-03-12, female
RID2 = "11010519491231002X"  # born 1949-12-31, female
MRN_A = systems.mrn_system("12440300MB0000001U")
MRN_B = systems.mrn_system("12440300MB0000002S")
pytestmark = pytest.mark.postgres


def reg(mrn_system: str, mrn: str, rid: str | None = None, **kw: object) -> RegistrationCreate:
    base = {"name": "张伟", "gender": "female", "birth_date": dt.date(1990, 3, 12),
            "phone": "13800138000", "district_code": "440305"}  # fmt: skip
    ids = [Identifier(system=mrn_system, value=mrn)]
    if rid:
        ids.append(Identifier(system=systems.RESIDENT_ID, value=rid))
    return RegistrationCreate(identifiers=ids, **{**base, **kw})


def _row(engine: Engine, table, **where: str) -> dict:
    with engine.connect() as conn:
        q = select(table).where(*(table.c[k] == v for k, v in where.items()))
        return dict(conn.execute(q).mappings().one())


def test_new_phone_keeps_the_link_and_refreshes_the_golden_record(
    engine: Engine, vault: IdentifierVault
) -> None:
    first = service.register(engine, vault, reg(MRN_A, "A1", RID))
    changed = RegistrationCreate(
        identifiers=[Identifier(system=MRN_A, value="A1")], phone="+86 139-0013-9000"
    )
    out = update_registration(engine, vault, changed)
    assert (out.outcome, out.person_id, out.registration_id) == (
        "updated", first.person_id, first.registration_id,
    )  # fmt: skip
    row = _row(engine, registrations, mrn="A1")
    # fields the update did not carry keep their stored values, the resident ID too
    assert (row["phone"], row["phone_key"], row["name"]) == ("13900139000", "13900139000", "张伟")
    assert row["rid_hash"] == vault.hash(systems.RESIDENT_ID, RID)
    assert _row(engine, persons, id=first.person_id)["phone"] == "13900139000"
    person = service.get_person(engine, vault, first.person_id)
    shown = {i.system: i.value for i in person.identifiers}
    assert shown == {MRN_A: "A1", systems.RESIDENT_ID: RID}


def test_unknown_mrn_and_missing_mrn_are_refused(engine: Engine, vault: IdentifierVault) -> None:
    with pytest.raises(NotFound):
        update_registration(engine, vault, reg(MRN_A, "NOPE"))
    with pytest.raises(InvalidInput):
        update_registration(engine, vault, RegistrationCreate(name="张伟"))
    service.register(engine, vault, reg(MRN_A, "A1"))
    with pytest.raises(InvalidInput):  # a bad resident ID writes nothing
        update_registration(engine, vault, reg(MRN_A, "A1", RID[:-1] + "9"))
    assert _row(engine, registrations, mrn="A1")["rid_hash"] is None


def test_a_corrected_identity_relinks_a_lone_registration_by_merge(
    engine: Engine, vault: IdentifierVault
) -> None:
    target = service.register(engine, vault, reg(MRN_A, "A1", RID))
    other = service.register(
        engine, vault,
        reg(MRN_B, "B1", name="王芳", birth_date=dt.date(1975, 5, 5), phone="13700137000"),
    )  # fmt: skip
    assert other.person_id != target.person_id
    # the hospital corrects the record: it is the same woman, with her resident ID
    out = update_registration(engine, vault, reg(MRN_B, "B1", RID))
    assert (out.outcome, out.person_id) == ("relinked", target.person_id)
    assert _row(engine, registrations, mrn="B1")["person_id"] == target.person_id
    [merge] = linkage.history_of(engine, other.person_id)
    assert merge["action"] == "merge" and merge["survivor_id"] == target.person_id
    linkage.unmerge(engine, other.person_id)  # stays undoable
    assert _row(engine, registrations, mrn="B1")["person_id"] == other.person_id


def test_a_conflicting_resident_id_splits_the_registration_off(
    engine: Engine, vault: IdentifierVault
) -> None:
    first = service.register(engine, vault, reg(MRN_A, "A1", RID))
    second = service.register(engine, vault, reg(MRN_B, "B1", RID))
    assert second.person_id == first.person_id
    fixed = reg(MRN_B, "B1", RID2, name="李娜", birth_date=dt.date(1949, 12, 31))
    out = update_registration(engine, vault, fixed)
    assert out.outcome == "split" and out.person_id != first.person_id
    assert _row(engine, registrations, mrn="B1")["person_id"] == out.person_id
    assert _row(engine, registrations, mrn="A1")["person_id"] == first.person_id
    new = _row(engine, persons, id=out.person_id)
    assert (new["status"], new["name"]) == ("active", "李娜")
    assert new["rid_hash"] == vault.hash(systems.RESIDENT_ID, RID2)
    assert [h["action"] for h in linkage.history_of(engine, out.person_id)] == ["split"]


def test_an_unchanged_identity_never_moves(engine: Engine, vault: IdentifierVault) -> None:
    a = service.register(engine, vault, reg(MRN_A, "A1", RID))
    b = service.register(engine, vault, reg(MRN_B, "B1"))  # linked by name, birth, phone
    assert b.person_id == a.person_id
    out = update_registration(engine, vault, reg(MRN_B, "B1", address="深圳市南山区科技园"))
    assert (out.outcome, out.person_id) == ("updated", a.person_id)
    assert _row(engine, registrations, mrn="B1")["address_key"]
