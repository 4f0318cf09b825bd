"""Registry service: validation reports every problem by field, nothing is written on failure."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from rhip.kernel.errors import Conflict, InvalidInput, ManyErrors
from rhip.registry import (
    InstitutionCreate,
    InstitutionFilter,
    InstitutionUpdate,
    UnknownInstitution,
    coverage,
    get,
    register,
    search,
    update,
)
from rhip.registry.models import districts, institutions


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(institutions)).scalar_one()


@pytest.mark.postgres
def test_register_then_read_round_trips_and_adds_district(engine: Engine, payload) -> None:
    made = register(engine, InstitutionCreate(**payload(1, grade="3A")))
    got = get(engine, made.id)
    assert got == made
    assert got.id == got.credit_code == payload(1)["credit_code"]
    assert got.grade == "三级甲等"  # FHIR code 3A stored as its label
    assert got.district_name == "福田区"
    assert got.feeds == ["adt", "lab"] and got.functions == ["viewing"]
    assert got.allow_cidrs == ["127.0.0.0/8", "::1/128"]
    assert got.active is True and got.created_at.tzinfo is not None
    with engine.connect() as conn:
        row = conn.execute(select(districts).where(districts.c.code == "440304")).one()
    assert (row.name, row.parent_code) == ("福田区", "440300")


def test_bad_credit_code_is_named_and_nothing_written(engine: Engine, payload) -> None:
    bad = payload(1)["credit_code"][:-1] + ("0" if payload(1)["credit_code"][-1] != "0" else "1")
    with pytest.raises(InvalidInput) as err:
        register(engine, InstitutionCreate(**payload(1, credit_code=bad)))
    assert err.value.expression == "credit_code" and "credit code" in err.value.message
    assert _count(engine) == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("district_code", "440399", "not a GB/T 2260 code"),
        ("district_code", "440300", "not a county-level district"),
        ("district_code", "44030", "six-digit"),
        ("type", "hospital", "unknown"),
        ("grade", "特等", "unknown"),
        ("connection_status", "online", "unknown"),
        ("name", "  ", "required"),
        ("id", "has space", "FHIR id"),
    ],
)
def test_each_bad_field_is_named(engine: Engine, payload, field, value, reason) -> None:
    with pytest.raises(InvalidInput) as err:
        register(engine, InstitutionCreate(**payload(1, **{field: value})))
    assert err.value.expression == field
    assert reason in err.value.message
    assert _count(engine) == 0


def test_abolished_district_is_refused(engine: Engine, payload) -> None:
    with pytest.raises(InvalidInput, match="abolished"):
        register(
            engine, InstitutionCreate(**payload(1, district_code="440302"))
        )  # 沙头角, 1983-1990


def test_several_problems_are_reported_together(engine: Engine, payload) -> None:
    data = payload(1, type="x", feeds=["lab", "fax"], allow_cidrs=["10.0.0.1/8", "nonsense"])
    with pytest.raises(ManyErrors) as err:
        register(engine, InstitutionCreate(**data))
    paths = [e.expression for e in err.value.errors]
    assert paths == ["type", "feeds[1]", "allow_cidrs[0]", "allow_cidrs[1]"]
    outcome = err.value.to_operation_outcome()
    assert [i["expression"] for i in outcome["issue"]][1] == ["feeds[1]"]
    assert _count(engine) == 0


@pytest.mark.postgres
def test_duplicate_credit_code_conflicts(engine: Engine, payload) -> None:
    register(engine, InstitutionCreate(**payload(1)))
    with pytest.raises(Conflict) as err:
        register(engine, InstitutionCreate(**payload(1, id="other", name="别的医院")))
    assert err.value.expression == "credit_code" and err.value.status == 409
    assert _count(engine) == 1


def test_part_of_must_exist(engine: Engine, payload) -> None:
    with pytest.raises(InvalidInput) as err:
        register(engine, InstitutionCreate(**payload(2, type="chc", grade=None, part_of="nope")))
    assert err.value.expression == "part_of"
    parent = register(engine, InstitutionCreate(**payload(1)))
    child = register(engine, InstitutionCreate(**payload(2, type="chc", part_of=parent.id)))
    assert child.part_of == parent.id


@pytest.mark.postgres
def test_update_changes_given_fields_and_validates(engine: Engine, payload) -> None:
    made = register(engine, InstitutionCreate(**payload(1, connection_status="testing")))
    changed = update(engine, made.id, InstitutionUpdate(connection_status="connected", phone="1"))
    assert (changed.connection_status, changed.phone, changed.name) == (
        "connected",
        "1",
        made.name,
    )
    assert changed.updated_at >= made.updated_at
    with pytest.raises(InvalidInput) as err:
        update(engine, made.id, InstitutionUpdate(district_code="999999"))
    assert err.value.expression == "district_code"
    assert get(engine, made.id).district_code == "440304"
    with pytest.raises(UnknownInstitution):
        update(engine, "missing", InstitutionUpdate(phone="2"))


def test_unknown_id_is_not_found(engine: Engine) -> None:
    with pytest.raises(UnknownInstitution) as err:
        get(engine, "nope")
    assert err.value.status == 404


@pytest.mark.postgres
def test_search_filters_and_pages(engine: Engine, payload) -> None:
    register(
        engine, InstitutionCreate(**payload(1, name="深圳市南山区人民医院", district_code="440305"))
    )
    register(engine, InstitutionCreate(**payload(2, name="深圳市福田区人民医院")))
    register(engine, InstitutionCreate(**payload(3, name="Ruby 50%_Clinic", type="clinic")))
    assert search(engine, InstitutionFilter(types=("clinic",)))[0] == 1
    assert search(engine, InstitutionFilter(district_codes=("440305",)))[0] == 1
    assert search(engine, InstitutionFilter(district_codes=("440300",)))[0] == 3
    assert search(engine, InstitutionFilter(district_codes=("110000",)))[0] == 0
    assert search(engine, InstitutionFilter(name_prefixes=("深圳市南山",)))[0] == 1
    assert search(engine, InstitutionFilter(name_prefixes=("ruby",)))[0] == 1
    assert search(engine, InstitutionFilter(name_contains=("人民医院",)))[0] == 2
    assert search(engine, InstitutionFilter(name_contains=("50%_",)))[0] == 1
    assert search(engine, InstitutionFilter(name_contains=("0%x",)))[0] == 0
    total, page = search(engine, InstitutionFilter(), limit=2, offset=2)
    assert total == 3 and len(page) == 1
    assert search(engine, InstitutionFilter(nothing=True))[0] == 0


@pytest.mark.postgres
def test_coverage_counts_from_the_database(engine: Engine, payload) -> None:
    specs = [
        ("public_hospital", "440304", "connected", ["lab", "adt"]),
        ("public_hospital", "440304", "testing", ["lab"]),
        ("public_hospital", "440305", "connected", ["exam"]),
        ("clinic", "440305", "not_connected", []),
        ("clinic", "440305", "connected", ["lab"]),
    ]
    for n, (kind, district, status, feeds) in enumerate(specs, start=1):
        register(
            engine,
            InstitutionCreate(
                **payload(
                    n, type=kind, district_code=district, connection_status=status, feeds=feeds
                )
            ),
        )
    register(engine, InstitutionCreate(**payload(9, active=False)))  # deregistered: not counted
    cov = coverage(engine)
    assert (cov.total, cov.connected, cov.testing, cov.rate) == (5, 3, 1, 0.6)
    by_type = {r.key: (r.total, r.connected, r.rate) for r in cov.by_type}
    assert by_type["public_hospital"] == (3, 2, 0.6667)
    assert by_type["clinic"] == (2, 1, 0.5)
    assert by_type["lab"] == (0, 0, None)
    by_district = {r.key: (r.label, r.total, r.connected) for r in cov.by_district}
    assert by_district == {"440304": ("福田区", 2, 1), "440305": ("南山区", 3, 2)}
    assert cov.by_feed == {"adt": 1, "lab": 2, "exam": 1, "imaging": 0, "epidemic": 0}
    assert cov.as_dict()["by_type"][0]["label"] == "公立医院"
