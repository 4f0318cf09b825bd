"""ADT^A01/A04/A08/A40 over the real ``V2Ingest`` path, through the MPI (no stub resolver).

The handlers are registered here with ``monkeypatch`` until ``handlers.HANDLERS`` carries them.
"""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from exchange.support import RID, SENDER, ack_fields, frame, oru
from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.exchange import handlers
from rhip.exchange.adt import ADT_HANDLERS
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.mllp import serve_mllp
from rhip.exchange.models import inbox_messages
from rhip.exchange.patients import mpi_resolver
from rhip.exchange.viewing import timeline
from rhip.identity import linkage, unmerge
from rhip.identity.models import persons, registrations
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.ids import check_digit

PEER = "127.0.0.1"
VAULT = IdentifierVault(SETTINGS.secret_key)  # the app's vault: its Patient read decrypts
RID2 = "44030519900312002" + check_digit("44030519900312002")
pytestmark = pytest.mark.postgres


def adt(
    control_id: str,
    event: str = "A04",
    *,
    pid3: str = "M100^^^^MR",
    name: str = "张^三",
    born: str = "19491231",  # RID's birth date
    sex: str = "F",
    phone: str = "13800138000",
    address: str = "福田路1号^^深圳市^广东省",
    extra: tuple[str, ...] = (),
) -> bytes:
    structure = {"A40": "ADT_A39", "A08": "ADT_A01", "A04": "ADT_A01"}.get(event, "ADT_A01")
    lines = [
        f"MSH|^~\\&|HIS|{SENDER}|RHIP|RHIP|20240301103000||ADT^{event}^{structure}|{control_id}"
        "|P|2.5.1||||||UNICODE UTF-8",
        f"EVN|{event}|20240301103000",
        f"PID|1||{pid3}||{name}||{born}|{sex}|||{address}||{phone}",
        *extra,
    ]
    return "\r".join(lines).encode()


def _resolver():
    """The MPI resolver exposing its vault, as ``patients.mpi_resolver`` is to (see adt._vault)."""
    resolve = mpi_resolver(VAULT)
    resolve.vault = VAULT  # type: ignore[attr-defined]
    return resolve


@pytest.fixture
def ingest(engine: Engine, sender_id: str, monkeypatch: pytest.MonkeyPatch) -> V2Ingest:
    for key, fn in ADT_HANDLERS.items():
        monkeypatch.setitem(handlers.HANDLERS, key, fn)
    return V2Ingest(engine, _resolver())


def _send(ingest: V2Ingest, raw: bytes) -> dict[str, list[str]]:
    return ack_fields(ingest.receive(raw, PEER))


def _row(engine: Engine, control_id: str) -> dict:
    with engine.connect() as conn:
        q = select(inbox_messages).where(inbox_messages.c.control_id == control_id)
        return dict(conn.execute(q.order_by(inbox_messages.c.id)).mappings().first())


def _reg(engine: Engine, mrn: str) -> dict:
    with engine.connect() as conn:
        q = select(registrations).where(registrations.c.mrn == mrn)
        return dict(conn.execute(q).mappings().one())


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def test_a04_registers_a_new_person_and_the_inbox_row_has_the_golden_id(
    engine: Engine, ingest: V2Ingest, sender_id: str
) -> None:
    ack = _send(ingest, adt("R1", pid3=f"{RID}^^^^NNCHN~M100^^^^MR", name="张^三~ZHANG^San"))
    assert ack["MSA"][1:3] == ["AA", "R1"] and "ERR" not in ack
    reg = _reg(engine, "M100")
    assert (reg["name"], reg["gender"], reg["phone"], reg["institution_id"]) == (
        "张三", "female", "13800138000", sender_id,
    )  # fmt: skip
    assert reg["address"] == "广东省 深圳市 福田路1号" and reg["rid_hash"]
    assert reg["birth_iso"] == "1949-12-31" and reg["mrn_system"].endswith(SENDER)
    assert _row(engine, "R1")["patient_id"] == reg["person_id"]
    assert _count(engine, persons) == 1


def test_a01_links_to_the_existing_golden_record_by_resident_id(
    engine: Engine, ingest: V2Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _send(ingest, adt("R1", "A04", pid3=f"{RID}^^^^NNCHN~M100^^^^MR"))["MSA"][1] == "AA"
    # another MRN of the same sender, pinyin-only name: the resident ID links it
    raw = adt("R2", "A01", pid3=f"M200^^^^MR~{RID}^^^^NNCHN", name="~ZHANG^San")
    assert _send(ingest, raw)["MSA"][1] == "AA"
    first, second = _reg(engine, "M100"), _reg(engine, "M200")
    assert second["person_id"] == first["person_id"] and second["outcome"] == "deterministic"
    assert second["name"] == "ZHANG San"
    assert _row(engine, "R2")["patient_id"] == first["person_id"]


def test_a08_updates_demographics_and_the_fhir_read_shows_them(
    engine: Engine, ingest: V2Ingest
) -> None:
    _send(ingest, adt("R1", pid3=f"{RID}^^^^NNCHN~M100^^^^MR"))
    person = _reg(engine, "M100")["person_id"]
    ack = _send(ingest, adt("U1", "A08", pid3="M100^^^^MR", phone="13900139000",
                            address="南山大道2号^^深圳市^广东省"))  # fmt: skip
    assert ack["MSA"][1] == "AA"
    reg = _reg(engine, "M100")
    assert (reg["phone"], reg["address"], reg["person_id"]) == (
        "13900139000", "广东省 深圳市 南山大道2号", person,
    )  # fmt: skip
    assert reg["rid_hash"]  # the update carried no resident ID: the stored one is kept
    client = TestClient(create_app(SETTINGS, engine=engine), headers=token_headers("operator"))
    res = client.get(f"/fhir/Patient/{person}")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["telecom"] == [{"system": "phone", "value": "13900139000"}]
    assert body["address"][0]["text"] == "广东省 深圳市 南山大道2号"
    assert _count(engine, registrations) == 1 and _row(engine, "U1")["patient_id"] == person


def test_a08_for_an_unknown_mrn_registers_it(engine: Engine, ingest: V2Ingest) -> None:
    ack = _send(ingest, adt("U1", "A08", pid3="M900^^^^MR", name="李^四"))
    assert ack["MSA"][1] == "AA"
    reg = _reg(engine, "M900")
    assert reg["name"] == "李四" and _row(engine, "U1")["patient_id"] == reg["person_id"]


def test_a08_without_an_mrn_is_ae_101(engine: Engine, ingest: V2Ingest) -> None:
    ack = _send(ingest, adt("U1", "A08", pid3=f"{RID}^^^^NNCHN"))
    assert ack["MSA"][1] == "AE"
    assert ack["ERR"][2] == "PID^1^3^1" and ack["ERR"][3].startswith("101^")


def test_a40_merges_two_golden_records_and_reports_follow_the_survivor(
    engine: Engine, ingest: V2Ingest
) -> None:
    _send(ingest, adt("R1", pid3=f"{RID}^^^^NNCHN~M100^^^^MR"))
    _send(ingest, adt("R2", pid3="M200^^^^MR", name="王^五", born="19800101", sex="M",
                      phone="13700137000"))  # fmt: skip
    survivor, gone = _reg(engine, "M100")["person_id"], _reg(engine, "M200")["person_id"]
    assert survivor != gone
    # a report filed under the MRN about to be merged away
    assert _send(ingest, oru("O1", pid3="M200^^^^MR").encode())["MSA"][1] == "AA"
    ack = _send(ingest, adt("G1", "A40", pid3="M100^^^^MR", extra=("MRG|M200^^^^MR",)))
    assert ack["MSA"][1] == "AA", ack
    assert _row(engine, "G1")["patient_id"] == survivor
    assert _reg(engine, "M200")["person_id"] == survivor
    [merge] = linkage.history_of(engine, gone)
    assert (merge["action"], merge["survivor_id"], merge["subsumed_id"]) == (
        "merge", survivor, gone,
    )  # fmt: skip
    with engine.connect() as conn:
        items = timeline(conn, survivor)["items"]
    assert [i["patient_id"] for i in items] == [gone]  # filed under the merged id, shown here
    # the resend gets the original ACK; nothing merges twice
    again = ingest.receive(adt("G1", "A40", pid3="M100^^^^MR", extra=("MRG|M200^^^^MR",)), PEER)
    assert ack_fields(again)["MSA"][1] == "AA" and len(linkage.history_of(engine, gone)) == 1
    # the same merge under a new MSH-10: already one record, AA, still one merge
    assert _send(ingest, adt("G2", "A40", pid3="M100^^^^MR", extra=("MRG|M200",)))["MSA"][1] == "AA"
    assert len(linkage.history_of(engine, gone)) == 1
    unmerge(engine, gone)  # the MPI can still undo it
    assert _reg(engine, "M200")["person_id"] == gone


def test_a40_of_two_resident_ids_is_refused_with_an_err(engine: Engine, ingest: V2Ingest) -> None:
    _send(ingest, adt("R1", pid3=f"{RID}^^^^NNCHN~M100^^^^MR"))
    _send(ingest, adt("R2", pid3=f"{RID2}^^^^NNCHN~M200^^^^MR", name="王^五", born="19900312"))
    ack = _send(ingest, adt("G1", "A40", pid3="M100^^^^MR", extra=("MRG|M200^^^^MR",)))
    assert ack["MSA"][1] == "AE"
    assert ack["ERR"][2] == "MRG^1^1^1^1" and ack["ERR"][3].startswith("207^")
    assert "different resident IDs" in ack["ERR"][8]
    assert RID not in ack["ERR"][8] and RID2 not in ack["ERR"][8]
    assert _reg(engine, "M200")["person_id"] != _reg(engine, "M100")["person_id"]
    assert _row(engine, "G1")["status"] == "failed"


def test_a40_with_an_unknown_prior_mrn_is_ae_204(engine: Engine, ingest: V2Ingest) -> None:
    _send(ingest, adt("R1", pid3="M100^^^^MR"))
    ack = _send(ingest, adt("G1", "A40", pid3="M100^^^^MR", extra=("MRG|NOPE^^^^MR",)))
    assert ack["MSA"][1] == "AE"
    assert ack["ERR"][2] == "MRG^1^1^1^1" and ack["ERR"][3].startswith("204^")


def test_bad_resident_id_is_ae_102_at_pid3_and_nothing_registered(
    engine: Engine, ingest: V2Ingest
) -> None:
    bad = RID[:-1] + ("0" if RID[-1] != "0" else "1")
    ack = _send(ingest, adt("R1", pid3=f"M100^^^^MR~{bad}^^^^NNCHN"))
    assert ack["MSA"][1] == "AE"
    assert ack["ERR"][2] == "PID^1^3^2^1" and ack["ERR"][3].startswith("102^")
    assert bad not in ack["ERR"][8]
    ack = _send(ingest, adt("R2", pid3="^^^^MR"))
    assert ack["MSA"][1] == "AE" and ack["ERR"][3].startswith("101^")
    assert _count(engine, registrations) == 0


def test_duplicate_control_id_gets_the_original_ack(engine: Engine, ingest: V2Ingest) -> None:
    first = ingest.receive(adt("R1", pid3="M100^^^^MR"), PEER)
    again = ingest.receive(adt("R1", pid3="M100^^^^MR", phone="13900139000"), PEER)
    assert again == first
    assert _reg(engine, "M100")["phone"] == "13800138000"  # the duplicate was not applied
    assert _row(engine, "R1")["status"] == "processed"


def test_a04_then_oru_over_a_real_socket(
    engine: Engine, sender_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, fn in ADT_HANDLERS.items():
        monkeypatch.setitem(handlers.HANDLERS, key, fn)

    async def main():
        server = await serve_mllp(engine, "127.0.0.1", 0, resolver=_resolver())
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            acks = []
            for raw in (adt("S1", pid3=f"{RID}^^^^NNCHN~M100^^^^MR"),
                        oru("S2", pid3="M100^^^^MR").encode()):  # fmt: skip
                writer.write(frame(raw))
                await writer.drain()
                acks.append((await reader.readuntil(b"\x1c\r"))[1:-2])
            writer.close()
            await writer.wait_closed()
            return acks
        finally:
            server.close()
            await server.wait_closed()

    acks = asyncio.run(main())
    assert [ack_fields(a)["MSA"][1:3] for a in acks] == [["AA", "S1"], ["AA", "S2"]]
    person = _reg(engine, "M100")["person_id"]
    with engine.connect() as conn:
        items = timeline(conn, person)["items"]
    assert len(items) == 1 and items[0]["patient_id"] == person
