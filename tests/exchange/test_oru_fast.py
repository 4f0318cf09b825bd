"""The hot path's own reads give what the general ones give: a PID on either tree (and when
remembered), a timestamp as python-hl7 reads it, the header as sent."""

from __future__ import annotations

import datetime as dt

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.support import RID, SENDER, oru
from rhip.exchange import hl7v2, v2fast
from rhip.exchange.errors import ContentError, Location, Refused
from rhip.exchange.patients import Identifier, registration_from_pid
from rhip.exchange.senders import Sender
from rhip.kernel import systems
from rhip.kernel.clock import CST

SEPS = ["|^~\\&", "#$*!@"]
ID = st.sampled_from(["", RID, "11010519491231002Y", "M1", "M\\F\\2", " M3 "])
KIND = st.sampled_from(["NNCHN", "MR", "mr", "PPN", "XX", ""])
HD = st.sampled_from(["", "A", f"&{SENDER}&USCI", SENDER, f"{SENDER.lower()}&x", "&short"])
CX = st.builds(
    lambda i, a, k, f, cut: f"{i}^^^{a}^{k}^{f}"[:cut], ID, HD, KIND, HD, st.integers(0, 80)
)
PIECE = st.sampled_from(["", "张", "三", "Smith", "John", "A\\S\\B", " x ", "深圳"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(CX, min_size=0, max_size=3).map("~".join),
    st.tuples(PIECE, PIECE).map("^".join),
    st.sampled_from(["", "19491231", "2099", "1949-12-31", "19491301", "19491231+0800"]),
    st.sampled_from(["", "M", "f", "X", "F^x"]),
    st.tuples(PIECE, PIECE, PIECE, PIECE).map("^".join),
    st.sampled_from(["", "138", "1~2", "a^b"]),
    st.sampled_from(SEPS),
)
def test_a_pid_reads_the_same_on_either_tree_and_when_remembered(
    pid3: str, name: str, born: str, sex: str, address: str, phone: str, seps: str
) -> None:
    lines = oru("P5").split("\r")
    lines[1] = f"PID|1||{pid3}||{name}||{born}|{sex}|||{address}||{phone}"
    raw = "\r".join(lines).translate(str.maketrans("|^~\\&", seps)).encode()
    sender = Sender("I1", SENDER, "x")

    def read(parse):
        pid = parse(raw, hl7v2.read_envelope(raw)).first("PID")
        try:
            return registration_from_pid(pid, sender)
        except ContentError as exc:
            return f"{exc.message} @ {exc.location}"

    fast = read(v2fast.parse)
    assert read(v2fast.parse) == fast == read(hl7v2.parse)


def _registration(pid: str, sender: Sender = Sender("I1", SENDER, "x")):
    lines = oru("P6").split("\r")
    lines[1] = pid
    raw = "\r".join(lines).encode()
    return registration_from_pid(v2fast.parse(raw, hl7v2.read_envelope(raw)).first("PID"), sender)


@pytest.mark.parametrize(
    ("cx4", "cx6", "facility"),
    [("D" * 18 + "&" + "C" * 18, "B" * 18 + "&" + "A" * 18, "A" * 18),  # CX.6 HD.2 first
     ("D" * 18 + "&" + "C" * 18, "B" * 18 + "&short", "B" * 18),  # then CX.6 HD.1
     ("D" * 18 + "&" + "C" * 18, "", "C" * 18),  # then CX.4 HD.2, HD.1
     ("d" * 18, "", "D" * 18),
     ("", "", SENDER)],  # else the sender
)  # fmt: skip
def test_a_medical_record_number_is_of_the_facility_that_assigned_it(
    cx4: str, cx6: str, facility: str
) -> None:
    reg = _registration(f"PID|1||M1^^^{cx4}^MR^{cx6}~M1^^^{cx4}^mr^{cx6}")
    assert reg.identifiers == (Identifier(systems.mrn_system(facility), "M1"),)


def test_a_pid_reads_name_birth_sex_address_and_phone() -> None:
    pid = f"PID|1||{RID}^^^^NNCHN||张^三||19491231|f|||福田路1号^^深圳市^广东省||138"
    reg = _registration(pid)
    assert (reg.name, reg.birth_date, reg.gender, reg.address, reg.phone) == (
        "张三", dt.date(1949, 12, 31), "female", "广东省 深圳市 福田路1号", "138"
    )  # fmt: skip
    assert reg.identifiers == (Identifier(systems.RESIDENT_ID, RID),)
    assert _registration(pid) is reg  # remembered: a patient's next report reads no PID again
    assert _registration(pid, Sender("I2", SENDER, "y")).source.institution_id == "I2"
    assert _registration("PID|1||M1^^^^MR||Smith^John").name == "John Smith"


def test_a_pid_in_error_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ContentError, match="PID-8") as err:
            _registration(f"PID|1||{RID}^^^^NNCHN||张^三||19491231|X")
        assert err.value.location == Location("PID", 1, 8, 1)


def _by_python_hl7(value: str) -> dt.datetime | str:
    """The reading before rhip had its own: python-hl7's parse_datetime, CST without offset."""
    if not hl7v2._TS.match(value.strip()):
        return "not an HL7 timestamp"
    try:
        parsed = hl7.parse_datetime(value.strip())
    except ValueError:
        return "not a calendar date and time"
    try:
        return (parsed.replace(tzinfo=CST) if parsed.tzinfo is None else parsed).astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        return type(exc).__name__


def _by_rhip(value: str) -> dt.datetime | str:
    try:
        return hl7v2._parse_ts(value, Location("OBR", 1, 7))  # not parse_ts: no cache
    except ContentError as exc:
        assert exc.location == Location("OBR", 1, 7) and repr(value) in exc.message
        return exc.message.split(" is ", 1)[1].split(" (")[0]
    except (ValueError, OverflowError) as exc:
        return type(exc).__name__


DTM = st.from_regex(r"\A\d{4}(\d{2}){0,5}(\.\d{1,7})?([+-]\d{4})?\Z").map(
    lambda v: v.replace("\n", "")
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(DTM, st.text(alphabet="0123456789.+- ", max_size=22)))
def test_a_timestamp_reads_as_python_hl7_reads_it(value: str) -> None:
    assert _by_rhip(value) == _by_python_hl7(value)


@pytest.mark.parametrize(
    "value",
    ["20240630092300+0800", "202406300923", "20240101.5", "202401011230.5", "20240101-0030",
     "20240101123045.123456-0545", "20240101+2500", "20241301+2500", "00010101", "2024"],
)  # fmt: skip
def test_timestamp_edges_read_as_python_hl7_reads_them(value: str) -> None:
    assert _by_rhip(value) == _by_python_hl7(value)


HD_PART = st.sampled_from(["", " ", "A", " B1 ", SENDER, "x&y"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(HD_PART, min_size=1, max_size=3).map("^".join),
    st.sampled_from(["ORU^R01^ORU_R01", "oru^r01", " ORU ^R01", "ORU", "ORU^", "^R01", ""]),
    st.sampled_from(["\r", "\n", "\r\n", ""]),
)
def test_the_header_is_read_as_sent(facility: str, message_type: str, end: str) -> None:
    raw = f"MSH|^~\\&|LIS|{facility}|RHIP|RHIP|2024||{message_type}|C1|P|2.5.1{end}PID|1".encode()
    code, trigger, *_ = (*message_type.strip().split("^"), "")
    # read_envelope's order of checks: MSH-9.1, MSH-9.2, MSH-4
    checks = (((9, None), code), ((9, 2), trigger), ((4, None), facility.strip()))
    missing = next((where for where, value in checks if not value), None)
    if missing:
        with pytest.raises(Refused) as err:
            hl7v2.read_envelope(raw)
        assert (err.value.location.field, err.value.location.component) == missing
        return
    env = hl7v2.read_envelope(raw)
    assert (env.message_code, env.trigger) == (code.upper(), trigger.upper())
    assert env.sending_facility == facility.strip() and env.control_id == "C1"
    hd = facility.strip().split("^")  # HD.1 namespace, HD.2 universal id: the credit code first
    wanted = (hd[1] if len(hd) > 1 else "", hd[0])
    assert env.sender_codes == tuple(c.strip() for c in wanted if c.strip())
