"""A fast HL7 v2 splitter for the ingest hot path, giving what ``hl7v2.parse`` gives.

python-hl7 builds a container object for every field, repetition and component of a message
(about 330 objects for an ORU with 12 OBX), and its ``extract_field`` walks them: together over
1 ms of CPU per message, which caps one ingest process below 1,000 messages a second. Here a
segment keeps its fields as strings and splits a field only when it is read. The values are those
``Seg.get`` returns from python-hl7's tree (a missing part is ``''``; escapes are undone by
python-hl7's own ``unescape``), which ``tests/exchange/test_v2fast.py`` checks property-wise.

>>> from rhip.exchange.hl7v2 import read_envelope
>>> raw = b"MSH|^~\\\\&|LIS|A^B|RHIP|RHIP|20240101||ORU^R01|C1|P|2.5.1\\rOBX|1|CWE|x^y&z~w"
>>> msg = parse(raw, read_envelope(raw))
>>> obx = msg.segments[1]
>>> obx.get(3, 2), obx.get(3, 2, 2), obx.get(3, 1, rep=2), obx.reps(3), obx.get(9)
('y', 'z', 'w', 2, '')
"""

from __future__ import annotations

from functools import lru_cache

from hl7.util import unescape

from rhip.exchange.errors import SEGMENT_SEQUENCE, ContentError, Location
from rhip.exchange.hl7v2 import _SEGMENT_ID, Envelope, Seg, V2Message, decode

_HEADERS = ("MSH", "BHS", "FHS")  # segments whose field 1 is the field separator itself


class FastSegment:
    """One segment's fields as strings, with python-hl7's ``extract_field`` contract."""

    __slots__ = ("_split", "esc", "fields", "plain", "separators")

    def __init__(self, fields: list[str], separators: str, esc: str, plain: bool = False):
        self.fields = fields
        self.separators = separators  # "\r" + field, repetition, component, sub-component
        self.esc = esc
        # no repetition, sub-component or escape anywhere in the segment: a field is read by
        # splitting it at the component separator alone (``oru``'s fast OBX read)
        self.plain = plain
        self._split: dict[int, list[list[list[str]]]] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, index: int) -> str | list[str]:
        """Field 0 as its name; any other field as its repetitions (what ``Seg.reps`` counts)."""
        if index == 0 or (self.fields[0] in _HEADERS and index in (1, 2)):
            return [self.fields[index]]
        return self.fields[index].split(self.separators[2])

    def first(self, field: int) -> str | None:
        """``Seg.get(field)`` of a plain field (no separator or escape in it) or an absent one
        (''), else None: the common read without the general path's calls."""
        fields = self.fields
        if field <= 0 or fields[0] in _HEADERS:
            return None
        if field >= len(fields):
            return ""
        value = fields[field]
        return value.strip() if self._plain(value) else None

    def firsts(self, wanted: tuple[int, ...]) -> list[str | None]:
        """``first(f)`` for each field of ``wanted`` in one call (None: read it the general way)."""
        fields = self.fields
        if fields[0] in _HEADERS:
            return [None] * len(wanted)
        n = len(fields)
        seps = self.separators
        rsep, csep, ssep, esc = seps[2], seps[3], seps[4], self.esc
        out: list[str | None] = []
        for f in wanted:
            if 0 < f < n:
                value = fields[f]
                if rsep in value or csep in value or ssep in value or esc in value:
                    out.append(None)
                else:
                    out.append(value.strip())
            else:
                out.append("" if f > 0 else None)
        return out

    def components(self, field: int, count: int, rep: int = 1) -> list[str] | None:
        """``[Seg.get(field, c, rep=rep) for c in 1..count]`` in one split (first sub-component,
        unescaped, stripped), else None for a header segment's field."""
        fields = self.fields
        if fields[0] in _HEADERS:
            return None
        if not 0 < field < len(fields):
            return [""] * count
        value = fields[field]
        seps = self.separators
        if rep > 1:
            reps = value.split(seps[2])
            value = reps[rep - 1] if rep <= len(reps) else ""
        elif seps[2] in value:
            value = value.split(seps[2], 1)[0]
        if not value:
            return [""] * count
        if seps[3] not in value and seps[4] not in value and self.esc not in value:
            return [value.strip(), *[""] * (count - 1)]
        out = []
        for part in value.split(seps[3])[:count]:
            if seps[4] in part:
                part = part.split(seps[4], 1)[0]
            if self.esc in part:
                part = str(unescape(self, part)).replace("\r", "\n")
            out.append(part.strip())
        if len(out) < count:
            out.extend([""] * (count - len(out)))
        return out

    def _plain(self, value: str) -> bool:
        seps = self.separators
        return not (seps[2] in value or seps[3] in value or seps[4] in value or self.esc in value)

    def extract_field(self, _segment=1, field=1, rep=1, component=1, sub=1) -> str:
        field, rep, component, sub = field or 1, rep or 1, component or 1, sub or 1  # as hl7 does
        if field >= len(self.fields):
            return ""
        if self.fields[0] in _HEADERS and field in (1, 2):
            return self.fields[field] if rep == component == sub == 1 else ""
        if rep == component == sub == 1:  # the common read: the first piece, no tree needed
            value = self.fields[field]
            for sep in self.separators[2:5]:
                if sep in value:
                    value = value.split(sep, 1)[0]
            return unescape(self, value) if self.esc in value else value
        tree = self._split.get(field)
        if tree is None:
            _, rsep, csep, ssep = self.separators[1:5]
            tree = [[c.split(ssep) for c in r.split(csep)] for r in self.fields[field].split(rsep)]
            self._split[field] = tree
        try:
            value = tree[rep - 1][component - 1][sub - 1]
        except IndexError:
            return ""
        return unescape(self, value) if self.esc in value else value


def parse(raw: bytes, env: Envelope) -> V2Message:
    """Decode and split the whole message; segment ids are checked as ``hl7v2.parse`` does."""
    text = decode(raw, env)
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    fs = env.field_sep
    enc = env.encoding_chars
    # python-hl7's order: segment, field, repetition, component, sub-component
    separators = "\r" + fs + enc[1] + enc[0] + (enc[3] if len(enc) > 3 else "&")
    esc = enc[2] if len(enc) > 2 else "\\"
    rsep, ssep = separators[2], separators[4]
    counts: dict[str, int] = {}
    segs = []
    for i, line in enumerate(line for line in text.split("\r") if line.strip()):
        parts = line.split(fs)
        name = parts[0]
        # hl7v2.parse's check of line[:3] and line[3]: the text before the first field separator
        if len(name) != 3 or not _segment_id(name):
            raise ContentError(
                f"line {i + 1} is not a segment: {line[:20]!r} (a segment id of 3 capitals "
                f"and the field separator {fs!r} are expected)",
                location=Location(line[:3] if line[:3].isalnum() else "MSH", 1),
                hl7_code=SEGMENT_SEQUENCE,
            )
        if name in _HEADERS:
            parts = [name, fs, *parts[1:]]
            plain = False
        else:
            plain = not (rsep in line or ssep in line or esc in line)
        seq = counts[name] = counts.get(name, 0) + 1
        segment = FastSegment(parts, separators, esc, plain)
        segs.append(Seg(name, seq, segment))  # type: ignore[arg-type]
    return V2Message(env, tuple(segs))


@lru_cache(maxsize=512)
def _segment_id(name: str) -> bool:
    """Whether ``name`` (3 characters) is a segment id: the few a sender uses, checked once."""
    return _SEGMENT_ID.match(name) is not None
