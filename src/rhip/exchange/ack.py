"""HL7 v2 acknowledgements (应答): MSH + MSA, and one ERR per problem for AE/AR.

Built by hand rather than with ``hl7.Message.create_ack`` because an ACK must also be sent for
a message whose MSH could not be parsed (then with default delimiters and an empty MSA-2), and
python-hl7 builds no ERR segments.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from rhip.exchange.errors import TABLE_0357, V2Error
from rhip.exchange.hl7v2 import DEFAULT_SEPARATORS, Envelope
from rhip.kernel.clock import CST, now

RECEIVING_APPLICATION = "RHIP"  # MSH-3 of every ACK rhip sends
RECEIVING_FACILITY = "RHIP"


def build_ack(
    env: Envelope | None,
    code: str,
    errors: Sequence[V2Error] = (),
    *,
    at: dt.datetime | None = None,
) -> bytes:
    """The ACK for a message with envelope ``env`` (None: its MSH was unusable), encoded in its
    charset. ``code`` is AA, AE or AR; every error becomes an ERR segment.
    """
    seps = env.separators if env else DEFAULT_SEPARATORS
    fs, comp = seps[0], seps[1]
    stamp = (at or now()).astimezone(CST).strftime("%Y%m%d%H%M%S+0800")
    trigger = env.trigger if env else ""
    msh = [
        "MSH",
        (env.encoding_chars if env else DEFAULT_SEPARATORS[1:]),
        RECEIVING_APPLICATION,
        RECEIVING_FACILITY,
        env.sending_application if env else "",
        env.sending_facility if env else "",
        stamp,
        "",
        comp.join(["ACK", trigger, "ACK"]),
        uuid.uuid4().hex[:20],
        (env.processing_id if env else "") or "P",
        "2.5.1",
        *([""] * 5),
        env.charset if env else "UNICODE UTF-8",
    ]
    segments = [fs.join(msh), fs.join(["MSA", code, env.control_id if env else ""])]
    segments += [_err(e, seps) for e in errors]
    text = "\r".join(segments) + "\r"
    codec = env.codec if env else "utf-8"
    return text.encode(codec, errors="replace")


def _err(error: V2Error, seps: str) -> str:
    fs, comp = seps[0], seps[1]
    location = error.location.render(comp) if error.location else ""
    code = error.hl7_code
    cwe = comp.join([code, TABLE_0357.get(code, ""), "HL70357"])
    severity = "E"
    # ERR-1 (deprecated) empty; ERR-2 location; ERR-3 code; ERR-4 severity; ERR-8 user message
    fields = ["ERR", "", location, cwe, severity, "", "", "", escape(error.message, seps)]
    return fs.join(fields)


def escape(text: str, seps: str = DEFAULT_SEPARATORS) -> str:
    """Escape the delimiters in free text (HL7 v2 section 2.7); line breaks become spaces.

    >>> escape("a|b^c\\\\d")
    'a\\\\F\\\\b\\\\S\\\\c\\\\E\\\\d'
    """
    fs, comp, rep, esc, sub = seps[:5]
    out = text.replace(esc, f"{esc}E{esc}")
    for char, name in ((fs, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{name}{esc}")
    return " ".join(out.split())


def ack_code_of(ack: bytes) -> str:
    """MSA-1 of an ACK (AA/AE/AR), read without decoding the rest."""
    for line in ack.split(b"\r"):
        if line.startswith(b"MSA"):
            return line[4:6].decode("ascii", errors="replace")
    return ""
