"""Reading HL7 v2.5.1 messages: the header first (delimiters, charset, sender), then the whole.

The MSH is read byte-wise in ASCII before anything else, because its MSH-18 names the charset the
rest is in (Chinese hospital systems send UTF-8 and GB18030/GBK alike) and MSH-1/MSH-2 name the
delimiters. The body is then decoded and handed to python-hl7's ``hl7.parse``.

>>> env = read_envelope(b"MSH|^~\\\\&|LIS|A^B|RHIP|RHIP|20240101||ORU^R01|C1|P|2.5.1")
>>> env.message_type, env.control_id, env.sender_codes, env.codec
('ORU^R01', 'C1', ('B', 'A'), 'utf-8')
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import hl7

from rhip.exchange.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_VERSION,
    ContentError,
    Location,
    Refused,
)
from rhip.kernel.clock import CST

# MSH-18 (HL7 table 0211, plus spellings seen in Chinese interfaces) → Python codec
CHARSETS = {
    "": "utf-8",
    "ASCII": "utf-8",  # a subset: decoding as UTF-8 accepts it unchanged
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "8859/1": "latin-1",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
    "GBK": "gb18030",  # GB18030 is a superset of GBK and GB2312
    "GB2312": "gb18030",
    "ISO IR58": "gb18030",  # GB 2312 by its ISO-IR registration
    "CP936": "gb18030",
}
DEFAULT_SEPARATORS = "|^~\\&"
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,6})?)?([+-]\d{4})?$")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the MSH tells before the message is decoded: enough to route, refuse or acknowledge."""

    field_sep: str
    encoding_chars: str  # MSH-2: component, repetition, escape, sub-component
    charset: str  # MSH-18 as sent
    codec: str  # the Python codec for it
    sending_application: str  # MSH-3 as sent
    sending_facility: str  # MSH-4 as sent
    sender_codes: tuple[str, ...]  # MSH-4 HD.2 and HD.1: where a credit code may be
    message_code: str  # MSG.1, e.g. ORU
    trigger: str  # MSG.2, e.g. R01
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger}"

    @property
    def component_sep(self) -> str:
        return self.encoding_chars[0]

    @property
    def separators(self) -> str:
        return self.field_sep + self.encoding_chars[:4]


def read_envelope(raw: bytes) -> Envelope:
    """Read the MSH of ``raw``; raise Refused (AR) with ERR location when it cannot be used."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.startswith(b"MSH"):
        what = "binary data" if _looks_binary(raw[:64]) else repr(raw[:12])
        raise Refused(
            f"not an HL7 v2 message: it must begin with an MSH segment, begins with {what}",
            location=Location("MSH", 1),
            hl7_code=SEGMENT_SEQUENCE,
        )
    fs, enc = _delimiters(raw)
    end = raw.find(b"\r")
    header = (raw if end < 0 else raw[:end]).split(b"\n", 1)[0].decode("ascii", errors="replace")
    fields = ["", fs, *header.split(fs)[1:]]  # fields[n] is MSH-n
    fields += [""] * (19 - len(fields))  # up to MSH-18; an absent field reads ''
    facility, msg_type, control_id = fields[4].strip(), fields[9].strip(), fields[10].strip()
    charset = fields[18].strip().split(enc[1])[0].strip().upper()
    if charset not in CHARSETS:
        raise Refused(
            f"MSH-18 character set {charset!r} is not supported; send UNICODE UTF-8 or "
            "GB 18030-2000",
            location=Location("MSH", 1, 18),
            hl7_code=TABLE_VALUE_NOT_FOUND,
        )
    code, trigger, *_ = (*msg_type.split(enc[0]), "")
    _require(code, 9, "MSH-9 message type")
    _require(trigger, 9, "MSH-9 trigger event", component=2)
    _require(control_id, 10, "MSH-10 message control id")
    _require(facility, 4, "MSH-4 sending facility")
    version = fields[12].strip().split(enc[0])[0]
    if not version.startswith("2."):
        raise Refused(
            f"MSH-12 version {version!r} is not HL7 v2 (rhip speaks 2.5.1)",
            location=Location("MSH", 1, 12),
            hl7_code=UNSUPPORTED_VERSION,
        )
    return Envelope(
        fs, enc, charset, CHARSETS[charset], fields[3].strip(), facility,
        _sender_codes(facility, enc[0]), code.upper(), trigger.upper(), control_id,
        fields[11].strip(), version,
    )  # fmt: skip


def _sender_codes(facility: str, csep: str) -> tuple[str, ...]:
    """MSH-4 HD.2 (universal id: where a credit code is sent) and HD.1, those present."""
    namespace, universal, *_ = (*facility.split(csep, 2), "")
    return tuple(c for c in (universal.strip(), namespace.strip()) if c)


def _delimiters(raw: bytes) -> tuple[str, str]:
    fs = chr(raw[3]) if len(raw) > 3 else ""
    end = raw.find(raw[3:4], 4) if fs else -1
    enc = raw[4:end].decode("latin-1") if end > 0 else ""
    if not _usable_delimiters(fs, enc):
        chars = fs + enc
        raise Refused(
            f"MSH-1/MSH-2 delimiters {chars[:8]!r} are not usable: a field separator and 4 "
            "distinct encoding characters (component, repetition, escape, sub-component), none a "
            "letter, digit or space, are required",
            location=Location("MSH", 1, 2),
            hl7_code=DATA_TYPE_ERROR,
        )
    return fs, enc


@lru_cache(maxsize=64)
def _usable_delimiters(fs: str, enc: str) -> bool:
    chars = fs + enc
    return bool(
        fs
        and 4 <= len(enc) <= 5
        and all(32 < ord(c) < 127 and not c.isalnum() for c in chars)
        and len(set(chars)) == len(chars)
    )


def _require(value: str, field: int, what: str, component: int | None = None) -> None:
    if not value:
        loc = Location("MSH", 1, field, 1 if component else None, component)
        raise Refused(f"{what} is missing", location=loc, hl7_code=REQUIRED_FIELD_MISSING)


def _looks_binary(head: bytes) -> bool:
    return any(b < 9 or 13 < b < 32 for b in head)


def decode(raw: bytes, env: Envelope) -> str:
    """The message text in its declared charset; without MSH-18, UTF-8 then GB18030 is tried."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode(env.codec)
    except UnicodeDecodeError as exc:
        if not env.charset:
            try:
                return raw.decode("gb18030")
            except UnicodeDecodeError:
                pass
        declared = env.charset or "none (UTF-8 assumed)"
        raise ContentError(
            f"the message is not valid {env.codec.upper()} at byte {exc.start}; MSH-18 "
            f"declares {declared}",
            location=Location("MSH", 1, 18),
            hl7_code=DATA_TYPE_ERROR,
        ) from None


# Not frozen: one is built for every segment on the ingest hot path, and a frozen dataclass's
# __init__ costs three times as much. Nothing changes a segment once read.
@dataclass(slots=True)
class Seg:
    """One segment, with its occurrence number among segments of its id (ERR-2.2)."""

    name: str
    seq: int
    raw: hl7.Segment

    def get(self, field: int, component: int = 1, sub: int = 1, rep: int = 1) -> str:
        """The unescaped value at ``field.component.sub`` of repetition ``rep``, or ''."""
        if component == sub == rep == 1 and (first := getattr(self.raw, "first", None)):
            value = first(field)  # v2fast's segment: a plain field read without the tree
            if value is not None:
                return value
        try:
            value = self.raw.extract_field(self.seq, field, rep, component, sub)
        except (IndexError, KeyError):
            return ""
        return str(value).replace("\r", "\n").strip()

    def comps(self, field: int, count: int, rep: int = 1) -> list[str]:
        """``[self.get(field, c, rep=rep) for c in range(1, count + 1)]``, in one split when it
        can."""
        components = getattr(self.raw, "components", None)
        if components is not None and (values := components(field, count, rep)) is not None:
            return values
        return [self.get(field, c, rep=rep) for c in range(1, count + 1)]

    def gets(self, *fields: int) -> list[str]:
        """``[self.get(f) for f in fields]``, plain fields read in one call."""
        firsts = getattr(self.raw, "firsts", None)
        if firsts is None:
            return [self.get(f) for f in fields]
        values = firsts(fields)
        return [self.get(f) if v is None else v for f, v in zip(fields, values, strict=True)]

    def ts(self, field: int, value: str | None = None) -> dt.datetime | None:
        """``parse_ts(self.get(field), self.loc(field))``, the location built only when needed;
        ``value`` is ``self.get(field)`` when the caller has read it already."""
        if value is None:
            value = self.get(field)
        if not value:
            return None
        cached = _TS_CACHE.get(value)
        if cached is not None:
            return cached
        return parse_ts(value, self.loc(field))

    def reps(self, field: int) -> int:
        """How many repetitions ``field`` has (0 when absent or empty)."""
        if field >= len(self.raw):
            return 0
        value = self.raw[field]
        if isinstance(value, str):
            return 1 if value else 0
        return sum(1 for r in value if str(r))

    def loc(self, field: int | None = None, component: int | None = None, rep: int = 1):
        if field is None and component is None:
            return _segment_location(self.name, self.seq)
        return Location(self.name, self.seq, field, rep if field else None, component)


@lru_cache(maxsize=1024)
def _segment_location(name: str, seq: int) -> Location:
    """A whole segment's location; immutable, so one is shared by every report naming it."""
    return Location(name, seq)


@dataclass(frozen=True, slots=True)
class V2Message:
    envelope: Envelope
    segments: tuple[Seg, ...]

    def first(self, name: str) -> Seg | None:
        return next((s for s in self.segments if s.name == name), None)


def parse(raw: bytes, env: Envelope) -> V2Message:
    """Decode and parse the whole message with python-hl7; segment ids are checked."""
    text = decode(raw, env).replace("\r\n", "\r").replace("\n", "\r")
    lines = [line for line in text.split("\r") if line.strip()]
    for i, line in enumerate(lines):
        if not _SEGMENT_ID.match(line[:3]) or (len(line) > 3 and line[3] != env.field_sep):
            raise ContentError(
                f"line {i + 1} is not a segment: {line[:20]!r} (a segment id of 3 capitals "
                f"and the field separator {env.field_sep!r} are expected)",
                location=Location(line[:3] if line[:3].isalnum() else "MSH", 1),
                hl7_code=SEGMENT_SEQUENCE,
            )
    message = hl7.parse("\r".join(lines))
    counts: dict[str, int] = {}
    segs = []
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        segs.append(Seg(name, counts[name], segment))
    return V2Message(env, tuple(segs))


_TS_CACHE: dict[str, dt.datetime] = {}  # text → parsed (only valid ones; datetimes are immutable)
_TS_CACHE_MAX = 8192


def parse_ts(value: str, location: Location) -> dt.datetime | None:
    """An HL7 DTM as an aware UTC datetime; without an offset the time is CST (UTC+8)."""
    if not value:
        return None
    cached = _TS_CACHE.get(value)
    if cached is not None:
        return cached
    parsed = _parse_ts(value, location)
    if len(_TS_CACHE) >= _TS_CACHE_MAX:
        _TS_CACHE.clear()  # bounded: a new working set refills it
    _TS_CACHE[value] = parsed
    return parsed


def _parse_ts(value: str, location: Location) -> dt.datetime:
    m = _TS.match(value.strip())
    if not m:
        raise ContentError(
            f"{value!r} is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])",
            location=location,
            hl7_code=DATA_TYPE_ERROR,
        )
    text, offset = value.strip(), m.group(7)
    try:
        parsed = _datetime(text[: -len(offset)] if offset else text)
    except ValueError:
        raise ContentError(
            f"{value!r} is not a calendar date and time", location=location, hl7_code="102"
        ) from None
    # an offset of a day or more raises ValueError here, as it did in python-hl7's conversion
    return parsed.replace(tzinfo=_zone(offset)).astimezone(dt.UTC)


def _datetime(stamp: str) -> dt.datetime:
    """``YYYY[MM[DD[HH[MM[SS[.S]]]]]]`` read by position as python-hl7's ``parse_datetime`` reads
    it (fractional seconds by way of a timedelta); ValueError when it is no calendar time."""
    n = len(stamp)
    second, micro = 0, 0
    if n >= 14 and "." in stamp:
        delta = dt.timedelta(seconds=float(stamp[12:]))
        second, micro = delta.seconds, delta.microseconds
    elif n >= 14:
        second = int(stamp[12:])
    return dt.datetime(
        int(stamp[0:4]),
        int(stamp[4:6]) if n >= 6 else 1,
        int(stamp[6:8]) if n >= 8 else 1,
        int(stamp[8:10]) if n >= 10 else 0,
        int(stamp[10:12]) if n >= 12 else 0,
        second,
        micro,
    )


@lru_cache(maxsize=64)
def _zone(offset: str | None) -> dt.tzinfo:
    """The zone of a DTM offset such as ``+0800``; without one, CST."""
    if offset is None:
        return CST
    minutes = int(offset[:3]) * 60
    # python-hl7's arithmetic, kept: the minutes take the sign of the hours, so -0030 is +00:30
    minutes += math.copysign(int(offset[3:]), minutes)
    return dt.timezone(dt.timedelta(minutes=minutes))
