"""Errors of the exchange context, carrying what an HL7 v2 ACK needs besides the FHIR mapping.

Each error knows its ACK code (``AE`` understood but wrong, ``AR`` refused), its HL7 table 0357
code (ERR-3) and where in the message it was found (ERR-2), so the MLLP path and the REST path
report the same problem the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rhip.kernel.errors import (
    Forbidden,
    InvalidInput,
    MalformedInput,
    NotFound,
    NotSupported,
    RhipError,
)

# HL7 table 0357 message error condition codes used by rhip (ERR-3)
SEGMENT_SEQUENCE = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT = "201"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
INTERNAL_ERROR = "207"

TABLE_0357 = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "207": "Application internal error",
}


@dataclass(frozen=True, slots=True)
class Location:
    """ERR-2 error location (ERL): segment id, its occurrence, field, repetition, component."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    def render(self, comp: str = "^") -> str:
        parts = [self.segment, str(self.sequence)]
        for value in (self.field, self.repetition, self.component):
            if value is None:
                break
            parts.append(str(value))
        return comp.join(parts)

    def expression(self) -> str:
        """The same place as an HL7 path, for OperationOutcome ``expression`` (``OBX[2].5``)."""
        text = f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            text += f".{self.field}"
            if self.component is not None:
                text += f".{self.component}"
        return text


class V2Error(RhipError):
    """A problem with an inbound HL7 v2 message, answered with ``ack_code`` and an ERR segment."""

    ack_code = "AE"
    hl7_code = INTERNAL_ERROR

    def __init__(self, message: str, *, location: Location | None = None, hl7_code: str = ""):
        super().__init__(message, expression=location.expression() if location else None)
        self.location = location
        if hl7_code:
            self.hl7_code = hl7_code


class ContentError(V2Error, InvalidInput):
    """AE: the message is understood but a value is missing or wrong (消息内容错误)."""

    ack_code = "AE"
    hl7_code = DATA_TYPE_ERROR


class UnknownPatient(V2Error, NotFound):
    """AE: the patient cannot be identified from what the message carries."""

    ack_code = "AE"
    hl7_code = UNKNOWN_KEY


class Refused(V2Error, MalformedInput):
    """AR: the message is refused as a whole (unparseable header, over the size limit)."""

    ack_code = "AR"
    hl7_code = SEGMENT_SEQUENCE


class SenderRefused(V2Error, Forbidden):
    """AR: MSH-4 is not a registered institution, or the peer is not on its allow-list."""

    ack_code = "AR"
    hl7_code = UNKNOWN_KEY


class UnsupportedMessage(V2Error, NotSupported):
    """AR: a message type or trigger event rhip does not accept."""

    ack_code = "AR"
    hl7_code = UNSUPPORTED_MESSAGE_TYPE


class InboxError(RhipError):
    """An inbox operation that cannot be done (unknown message id, nothing to retry)."""


def as_v2_error(exc: RhipError) -> V2Error:
    """Map an error raised by another context (MPI, kernel validation) to an ACK-ready error."""
    if isinstance(exc, V2Error):
        return exc
    if isinstance(exc, NotFound):
        return UnknownPatient(exc.message)
    if isinstance(exc, InvalidInput | MalformedInput):
        return ContentError(exc.message)
    return V2Error(exc.message, hl7_code=INTERNAL_ERROR)
