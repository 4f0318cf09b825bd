"""Reading HL7 v2 without a database: header, charset, delimiters, values, ACK shape."""

from __future__ import annotations

import datetime as dt

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.support import oru
from rhip.exchange.ack import build_ack, escape
from rhip.exchange.errors import ContentError, Location, Refused, V2Error
from rhip.exchange.hl7v2 import parse, parse_ts, read_envelope
from rhip.exchange.values import structured_numeric


def _gb_char_with_pipe_byte() -> str:
    """A Chinese character whose GB18030 second byte is '|' (0x7C)."""
    for lead in range(0x81, 0xFF):
        try:
            return bytes([lead, 0x7C]).decode("gb18030")
        except UnicodeDecodeError:
            continue
    raise AssertionError("none found")


def test_envelope_reads_sender_type_and_charset() -> None:
    env = read_envelope(oru(charset="GB 18030-2000").encode("gb18030"))
    assert (env.message_type, env.control_id, env.codec) == ("ORU^R01", "MSG0001", "gb18030")
    assert env.sender_codes[-1].startswith("12440300")


def test_gb18030_bytes_equal_to_a_delimiter_do_not_split_fields() -> None:
    char = _gb_char_with_pipe_byte()
    message = oru(charset="GB 18030-2000", pid3="M1^^^^MR").replace("张^三", f"{char}^三")
    raw = message.encode("gb18030")
    assert b"|" in char.encode("gb18030")
    msg = parse(raw, read_envelope(raw))
    pid = msg.first("PID")
    assert pid is not None and pid.get(5, 1) == char and pid.get(7) == "19491231"


def test_without_msh18_utf8_then_gb18030_is_read() -> None:
    raw = oru(charset="").encode("gb18030")
    msg = parse(raw, read_envelope(raw))
    assert msg.first("PID").get(5, 1) == "张"


def test_declared_utf8_that_is_not_is_a_content_error() -> None:
    raw = oru().encode("gb18030")
    with pytest.raises(ContentError, match="not valid UTF-8") as err:
        parse(raw, read_envelope(raw))
    assert err.value.location == Location("MSH", 1, 18)


def test_line_feeds_and_escapes_are_handled() -> None:
    raw = oru(obx=["OBX|1|ST|X^Y||a\\F\\b\\S\\c||||||F"]).replace("\r", "\r\n").encode()
    msg = parse(raw, read_envelope(raw))
    assert [s.name for s in msg.segments] == ["MSH", "PID", "OBR", "OBX", "SPM"]
    assert msg.first("OBX").get(5) == "a|b^c"


def test_timestamps_without_offset_are_cst() -> None:
    where = Location("OBR", 1, 7)
    assert parse_ts("202403011030", where) == dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.UTC)
    assert parse_ts("20240301103000+0000", where) == dt.datetime(2024, 3, 1, 10, 30, tzinfo=dt.UTC)
    assert parse_ts("", where) is None
    with pytest.raises(ContentError):
        parse_ts("2024-03-01", where)


def test_structured_numeric() -> None:
    assert structured_numeric([">=", "10"]) == (">=", 10.0, None)
    assert structured_numeric(["", "1", ":", "40"]) == (None, None, "1:40")
    for bad in (["~", "1"], ["", ""], ["", "1", "x", "2"], ["", "1e5"]):
        with pytest.raises(ValueError):
            structured_numeric(bad)


def test_ack_carries_err_with_location_code_and_escaped_text() -> None:
    env = read_envelope(oru().encode())
    error = ContentError("bad | value ^ here", location=Location("OBX", 2, 5, 1), hl7_code="102")
    ack = build_ack(env, "AE", [error])
    msg = hl7.parse(ack.decode())
    assert str(msg.segment("MSA")) == "MSA|AE|MSG0001"
    err = msg.segment("ERR")
    assert str(err(2)) == "OBX^2^5^1"
    assert str(err(3)) == "102^Data type error^HL70357"
    assert msg.unescape(str(err(8))) == "bad | value ^ here"
    assert escape("x\ry") == "x y"


def test_ack_for_an_unreadable_header_uses_defaults() -> None:
    ack = build_ack(None, "AR", [Refused("nope", location=Location("MSH", 1))])
    assert ack.startswith(b"MSH|^~\\&|RHIP|RHIP|") and b"\rMSA|AR|\r" in ack


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_give_a_message_or_an_ack_error(data: bytes, with_msh: bool) -> None:
    raw = (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\r" if with_msh else b"") + data
    try:
        parse(raw, read_envelope(raw))
    except V2Error as exc:
        assert exc.ack_code in ("AE", "AR") and exc.message
