"""The MPI service on a real database: bulk and single registration, reviews, merge/unmerge,
protection of resident IDs. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text

from rhip.identity import linkage, service
from rhip.identity.models import history, identifiers, persons, registrations, reviews
from rhip.identity.quality import pairwise_scores
from rhip.identity.schemas import Identifier, RegistrationCreate
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import Conflict, InvalidInput

RID = "440305199003120026"  # born 1990-03-12, female
MRN_A = systems.mrn_system("12440300MB0000001U")
MRN_B = systems.mrn_system("12440300MB0000002S")


DOUBTFUL = {
    "name": "ZHANG Wei",
    "birth_date": dt.date(1990, 12, 3),
    "phone": "13999999999",
    "district_code": "440306",
}


def reg(mrn_system: str, mrn: str, **kw: object) -> RegistrationCreate:
    base = {"name": "张伟", "gender": "female", "birth_date": dt.date(1990, 3, 12),
            "phone": "13800138000", "district_code": "440305"}  # fmt: skip
    ids = [Identifier(system=mrn_system, value=mrn)]
    if kw.pop("rid", None):
        ids.append(Identifier(system=systems.RESIDENT_ID, value=RID))
    return RegistrationCreate(identifiers=ids, **{**base, **kw})


@pytest.mark.postgres
def test_register_many_links_a_population_and_resumes(
    engine: Engine, vault: IdentifierVault, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, regs = population
    half = len(regs) // 2
    first = service.register_many(engine, vault, regs.iloc[:half], chunk=200)
    second = service.register_many(engine, vault, regs, chunk=200)  # first half again: skipped
    assert first.registered == half and second.skipped_existing == half
    assert second.registered == len(regs) - half
    with engine.connect() as conn:
        stored = pd.DataFrame(
            conn.execute(select(registrations.c.mrn_system, registrations.c.mrn,
                                registrations.c.person_id)).all(),
            columns=["mrn_system", "mrn", "person_id"],
        )  # fmt: skip
        n_persons = conn.execute(select(func.count()).select_from(persons)).scalar_one()
    regs = regs.assign(mrn_system=systems.MRN_PREFIX + regs["credit_code"])
    joined = regs.merge(stored, on=["mrn_system", "mrn"])
    assert len(joined) == len(regs)
    assert pairwise_scores(joined["true_person"], joined["person_id"]).f1 >= 0.98
    assert n_persons == first.persons_created + second.persons_created


@pytest.mark.postgres
def test_resident_ids_are_never_stored_in_clear(
    engine: Engine,
    vault: IdentifierVault,
    population: tuple[pd.DataFrame, pd.DataFrame],
    backend: str,
) -> None:
    residents, regs = population
    service.register_many(engine, vault, regs)
    result = service.register(engine, vault, reg(MRN_A, "X1", rid=True))
    with engine.connect() as conn:
        dump = "\n".join(
            repr(row)
            for table in (persons, registrations, identifiers, reviews, history)
            for row in conn.execute(select(table))
        )
        stored = conn.execute(
            select(identifiers.c.value, identifiers.c.value_hash, identifiers.c.value_enc)
            .where(identifiers.c.system == systems.RESIDENT_ID)
        ).all()  # fmt: skip
    clear = set(residents["resident_id"]) | {RID}
    assert not any(rid in dump for rid in clear)
    assert stored and all(v is None and h and e for v, h, e in stored)
    if backend == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = Path(engine.url.database).read_bytes()
        assert RID.encode() not in raw and residents["resident_id"].iloc[0].encode() not in raw
    person = service.get_person(engine, vault, result.person_id)
    assert any(i.value == RID for i in person.identifiers)  # decrypted for the response


@pytest.mark.postgres
def test_single_registration_outcomes_and_review(engine: Engine, vault: IdentifierVault) -> None:
    first = service.register(engine, vault, reg(MRN_A, "A1", rid=True))
    assert (first.outcome, first.created_person) == ("new", True)
    assert service.register(engine, vault, reg(MRN_A, "A1")).outcome == "existing"
    auto = service.register(engine, vault, reg(MRN_B, "B1", phone=None))
    assert (auto.outcome, auto.person_id) == ("auto", first.person_id)
    # pinyin-only, day and month swapped, another phone: probable, not certain
    doubt = service.register(engine, vault, reg(MRN_B, "B2", **DOUBTFUL))
    with engine.connect() as conn:
        status = conn.execute(
            select(persons.c.status).where(persons.c.id == doubt.person_id)
        ).scalar()
    assert doubt.outcome == "review" and doubt.review_id and status == "provisional"
    survivor = linkage.decide_review(engine, doubt.review_id, link=True, actor="tester")
    assert survivor == first.person_id
    person = service.get_person(engine, vault, doubt.person_id)
    assert (person.status, person.merged_into) == ("merged", first.person_id)
    with pytest.raises(Conflict):
        linkage.decide_review(engine, doubt.review_id, link=False)
    wang = {"name": "王芳", "birth_date": dt.date(1980, 5, 6)}
    new = service.register(engine, vault, reg(MRN_B, "B9", **wang,
                                              phone="13700000000"))  # fmt: skip
    assert new.outcome == "new" and new.person_id != first.person_id


@pytest.mark.postgres
def test_review_rejected_keeps_the_provisional_record(
    engine: Engine, vault: IdentifierVault
) -> None:
    first = service.register(engine, vault, reg(MRN_A, "A1", rid=True))
    doubt = service.register(engine, vault, reg(MRN_B, "B3", **DOUBTFUL))
    assert doubt.outcome == "review"
    assert linkage.decide_review(engine, doubt.review_id, link=False) == doubt.person_id
    assert service.get_person(engine, vault, doubt.person_id).status == "active"
    assert service.get_person(engine, vault, first.person_id).status == "active"


@pytest.mark.postgres
def test_merge_and_unmerge_keep_history(engine: Engine, vault: IdentifierVault) -> None:
    a = service.register(engine, vault, reg(MRN_A, "A1", rid=True))
    li = {"name": "李娜", "birth_date": dt.date(1990, 1, 2)}
    b = service.register(engine, vault, reg(MRN_B, "B1", **li,
                                            phone="13700000000"))  # fmt: skip
    assert a.person_id != b.person_id
    merge_id = linkage.merge(engine, a.person_id, b.person_id, reason="same person", actor="tester")
    merged = service.get_person(engine, vault, b.person_id)
    survivor = service.get_person(engine, vault, a.person_id)
    assert (merged.status, merged.merged_into) == ("merged", a.person_id)
    assert {i.value for i in survivor.identifiers} >= {"A1", "B1", RID}
    with pytest.raises(Conflict):
        linkage.merge(engine, a.person_id, b.person_id)
    with pytest.raises(InvalidInput):
        linkage.merge(engine, a.person_id, a.person_id)
    linkage.unmerge(engine, b.person_id, actor="tester")
    back = service.get_person(engine, vault, b.person_id)
    assert back.status == "active" and {i.value for i in back.identifiers} == {"B1"}
    assert "B1" not in {i.value for i in service.get_person(engine, vault, a.person_id).identifiers}
    log = linkage.history_of(engine, b.person_id)
    assert [h["action"] for h in log] == ["merge", "unmerge"]
    assert log[0]["id"] == merge_id and log[0]["undone_by"] == log[1]["id"]
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from mpi_registrations")).scalar_one() == 2


@pytest.mark.postgres
def test_invalid_resident_id_is_refused_and_nothing_written(
    engine: Engine, vault: IdentifierVault
) -> None:
    bad = RegistrationCreate(
        identifiers=[Identifier(system=systems.RESIDENT_ID, value=RID[:-1] + "1")]
    )
    assert RID[-1] != "1"
    with pytest.raises(InvalidInput, match="check digit"):
        service.register(engine, vault, bad)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(registrations)).scalar_one() == 0


@pytest.mark.postgres
def test_person_of_mrn_answers_as_register_does_for_a_known_mrn(
    engine: Engine, vault: IdentifierVault
) -> None:
    """The ingest shortcut for a patient the sender registered before: the MRN's golden person,
    the same ``register`` returns for that MRN, and after a merge the surviving person."""
    a = service.register(engine, vault, reg(MRN_A, "A1", rid=True))
    b = service.register(engine, vault, reg(MRN_B, "B1", name="李娜", phone="13700000000",
                                            birth_date=dt.date(1990, 1, 2)))  # fmt: skip
    with engine.connect() as conn:
        assert service.person_of_mrn(conn, MRN_A, "A1") == a.person_id
        assert service.person_of_mrn(conn, MRN_A, "B1") is None  # another institution's number
        assert service.person_of_mrn(conn, MRN_B, "nobody") is None
    again = service.register(engine, vault, reg(MRN_A, "A1", name="别名"))
    assert (again.outcome, again.person_id) == ("existing", a.person_id)
    linkage.merge(engine, a.person_id, b.person_id, reason="same person", actor="tester")
    with engine.connect() as conn:
        assert service.person_of_mrn(conn, MRN_B, "B1") == a.person_id
