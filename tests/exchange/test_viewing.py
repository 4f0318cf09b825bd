"""Viewing (调阅): timeline order, filters, paging, merged records, current versions only, report
detail with abnormal flags, trends across institutions. Rows are written straight to the tables
(the ingest path has its own tests); one test goes through HL7 ingest end to end.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, event, insert

from exchange.support import add_institution, oru, resolver
from rhip.exchange import viewing
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import observations, reports
from rhip.identity.models import persons
from rhip.kernel.errors import InvalidInput, MalformedInput, NotFound
from rhip.registry.models import districts, institutions

T0 = dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)
A, B, FAR = "org-a", "org-b", "org-far"  # FAR lies in another province (scope tests)


def add_org(conn, org_id: str, district: str = "440304", kind: str = "public_hospital") -> str:
    now = dt.datetime.now(dt.UTC)
    if conn.execute(districts.select().where(districts.c.code == district)).first() is None:
        conn.execute(insert(districts).values(code=district, name=f"区{district}"))
    conn.execute(
        insert(institutions).values(
            id=org_id, credit_code=uuid.uuid4().hex[:18].upper(), name=f"医院{org_id}",
            type=kind, district_code=district, connection_status="connected", feeds="{}",
            functions="{}", allow_cidrs="", created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return org_id


def add_person(conn, pid: str, merged_into: str | None = None) -> str:
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        insert(persons).values(
            id=pid, status="merged" if merged_into else "active", merged_into=merged_into,
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return pid


def add_report(
    conn,
    pid: str,
    org: str,
    issued: dt.datetime,
    *,
    kind: str = "lab",
    code: str = "24331-1",
    status: str = "final",
    current: bool = True,
    specimen: str | None = "全血",
    key: str | None = None,
    version: int = 1,
    obs: list[dict] | None = None,
) -> str:
    rid = uuid.uuid4().hex
    conn.execute(
        insert(reports).values(
            id=rid, report_key=key or rid, version=version, current=current, patient_id=pid,
            institution_id=org, kind=kind, code=code, display=f"报告{code}", status=status,
            specimen=specimen, issued_at=issued, collected_at=issued - dt.timedelta(hours=2),
            recorded_at=issued, conclusion="未见异常" if kind == "exam" else None,
        )
    )  # fmt: skip
    for seq, o in enumerate(obs or [], start=1):
        row = dict(report_id=rid, patient_id=pid, seq=seq, value_type="NM",
                   observed_at=issued - dt.timedelta(hours=2), status="F")  # fmt: skip
        row.update(o)
        conn.execute(insert(observations).values(**row))
    return rid


@pytest.fixture
def city(engine: Engine) -> Engine:
    with engine.begin() as conn:
        add_org(conn, A)
        add_org(conn, B, "440305")
        add_org(conn, FAR, "110105")
    return engine


@pytest.mark.postgres
def test_timeline_newest_first_across_institutions_with_filters(city: Engine) -> None:
    with city.begin() as conn:
        add_person(conn, "p1")
        ids = [
            add_report(conn, "p1", A if i % 2 else B, T0 + dt.timedelta(days=i),
                       kind="exam" if i == 3 else "lab")
            for i in range(6)
        ]  # fmt: skip
        add_report(conn, "p2", A, T0)  # someone else
    with city.connect() as conn:
        page = viewing.timeline(conn, "p1")
        assert [r["id"] for r in page["items"]] == ids[::-1]
        assert page["next"] is None
        assert {r["institution_name"] for r in page["items"]} == {"医院org-a", "医院org-b"}
        assert [r["id"] for r in viewing.timeline(conn, "p1", kind="exam")["items"]] == [ids[3]]
        only_a = viewing.timeline(conn, "p1", institution=A)["items"]
        assert [r["id"] for r in only_a] == [ids[5], ids[3], ids[1]]
        # dates are CST days, until inclusive: T0 is 2024-03-01 10:00 CST
        days = viewing.timeline(conn, "p1", since=dt.date(2024, 3, 2), until=dt.date(2024, 3, 3))
        assert [r["id"] for r in days["items"]] == [ids[2], ids[1]]


@pytest.mark.postgres
def test_timeline_keyset_pages_cover_everything_once(city: Engine) -> None:
    with city.begin() as conn:
        same = T0 + dt.timedelta(days=1)  # ties on issued_at are broken by id
        ids = {add_report(conn, "p1", A, same if i < 4 else T0 + dt.timedelta(hours=i))
               for i in range(7)}  # fmt: skip
    seen: list[str] = []
    before = None
    with city.connect() as conn:
        for _ in range(5):
            page = viewing.timeline(conn, "p1", limit=3, before=before)
            seen += [r["id"] for r in page["items"]]
            before = page["next"]
            if before is None:
                break
    assert len(seen) == 7 and set(seen) == ids
    assert before is None


@pytest.mark.postgres
def test_timeline_includes_records_merged_into_the_golden_one(city: Engine) -> None:
    with city.begin() as conn:
        add_person(conn, "gold")
        add_person(conn, "old", merged_into="gold")
        add_person(conn, "other")
        mine = add_report(conn, "gold", A, T0)
        merged = add_report(conn, "old", B, T0 + dt.timedelta(days=1))
        add_report(conn, "other", B, T0)
    with city.connect() as conn:
        items = viewing.timeline(conn, "gold")["items"]
        assert [(r["id"], r["patient_id"]) for r in items] == [(merged, "old"), (mine, "gold")]
        assert viewing.report_patient(conn, merged) == "gold"  # access is decided on the golden


@pytest.mark.postgres
def test_superseded_and_cancelled_versions_are_never_listed(city: Engine) -> None:
    with city.begin() as conn:
        add_report(conn, "p1", A, T0, key="K1", status="preliminary", current=False)
        final = add_report(conn, "p1", A, T0 + dt.timedelta(hours=1), key="K1", version=2)
        add_report(conn, "p1", A, T0, key="K2", current=False)
        add_report(conn, "p1", A, T0 + dt.timedelta(hours=2), key="K2", version=2,
                   status="cancelled", current=False)  # fmt: skip
    with city.connect() as conn:
        assert [r["id"] for r in viewing.timeline(conn, "p1")["items"]] == [final]


@pytest.mark.postgres
def test_timeline_errors_are_specific(city: Engine) -> None:
    with city.begin() as conn:
        add_person(conn, "empty")
    with city.connect() as conn:
        assert viewing.timeline(conn, "empty")["items"] == []
        with pytest.raises(NotFound):
            viewing.timeline(conn, "nobody")
        with pytest.raises(MalformedInput):
            viewing.timeline(conn, "bad id!")
        with pytest.raises(InvalidInput, match="wrong way round"):
            viewing.timeline(conn, "empty", since=dt.date(2024, 5, 1), until=dt.date(2024, 4, 1))
        with pytest.raises(InvalidInput):
            viewing.timeline(conn, "empty", kind="xray")
        with pytest.raises(MalformedInput):
            viewing.timeline(conn, "empty", before="not-a-cursor")


def test_timeline_is_one_query(city: Engine) -> None:
    with city.begin() as conn:
        add_report(conn, "p1", A, T0)
    statements: list[str] = []
    event.listen(city, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with city.connect() as conn:
        statements.clear()
        assert len(viewing.timeline(conn, "p1")["items"]) == 1
    assert len(statements) == 1, statements


@pytest.mark.postgres
def test_report_detail_has_observations_ranges_and_flags(city: Engine) -> None:
    with city.begin() as conn:
        rid = add_report(conn, "p1", A, T0, obs=[
            dict(code="GLU", value_num=9.1, unit="mmol/L", reference_range="3.9-6.1",
                 abnormal_flag="H"),
            dict(code="K", value_num=2.1, unit="mmol/L", reference_range="3.5-5.3",
                 abnormal_flag="LL"),
            dict(code="NA", value_num=140, unit="mmol/L", reference_range="137-147",
                 abnormal_flag="N"),
            dict(code="COLOR", value_type="ST", value_text="淡黄色"),
        ])  # fmt: skip
    with city.connect() as conn:
        d = viewing.report_detail(conn, rid)
        with pytest.raises(NotFound):
            viewing.report_detail(conn, "0" * 32)
    assert d["institution_name"] == "医院org-a" and d["abnormal_count"] == 2
    flags = [(o["code"], o["abnormal"], o["critical"]) for o in d["observations"]]
    assert flags == [("GLU", True, False), ("K", True, True), ("NA", False, False),
                     ("COLOR", False, False)]  # fmt: skip
    assert d["observations"][0]["reference_range"] == "3.9-6.1"
    assert d["observations"][1]["flag_label"].startswith("危急低")


@pytest.mark.postgres
def test_trend_uses_standard_code_across_institutions(city: Engine) -> None:
    with city.begin() as conn:
        add_person(conn, "p1")
        add_person(conn, "p1-old", merged_into="p1")
        # A sends GLU in mg/dL mapped to LOINC 14749-6; B sends the LOINC code itself unmapped
        add_report(conn, "p1", A, T0, obs=[dict(code="GLU", value_num=108, unit="mg/dL",
                   std_code="14749-6", std_value=6.0, std_unit="mmol/L")])  # fmt: skip
        add_report(
            conn,
            "p1-old",
            B,
            T0 + dt.timedelta(days=3),
            obs=[dict(code="14749-6", value_num=5.1, unit="mmol/L")],
        )
        add_report(conn, "p1", B, T0 + dt.timedelta(days=5), status="cancelled", current=False,
                   obs=[dict(code="14749-6", value_num=99.0, unit="mmol/L")])  # fmt: skip
        add_report(conn, "p1", B, T0, obs=[dict(code="HBA1C", value_num=6.5, unit="%")])
    with city.connect() as conn:
        t = viewing.trend(conn, "p1", "14749-6")
        with pytest.raises(NotFound):
            viewing.trend(conn, "ghost", "14749-6")
    assert [(p["value"], p["institution_id"]) for p in t["points"]] == [(6.0, A), (5.1, B)]
    assert t["unit"] == "mmol/L" and t["points"][0]["value_as_sent"] == 108


@pytest.mark.postgres
def test_timeline_of_an_ingested_oru(engine: Engine) -> None:
    sender = add_institution(engine)
    ack = V2Ingest(engine, resolver).receive(oru("V1").encode(), "127.0.0.1")
    assert b"MSA|AA" in ack
    with engine.connect() as conn:
        pid = conn.execute(reports.select()).mappings().one()["patient_id"]
        items = viewing.timeline(conn, pid)["items"]
        detail = viewing.report_detail(conn, items[0]["id"])
    assert items[0]["institution_id"] == sender and items[0]["code"] == "24331-1"
    assert [o["abnormal_flag"] for o in detail["observations"]][:2] == ["N", "L"]
