"""The fast decoder of usual Bundle lines (快速解码) for ``bulk_map``: msgspec Structs for
exactly the FHIR elements rhip reads, decoded and validated in C, then mapped to the columns.

Every Struct forbids unknown fields and no element takes ``null``: a line with anything else
(another resource type, an extra element, a ``null``, an integer beyond 64 bits) is not
decoded here and takes ``bulk_map``'s dict path, which decides on it exactly as before. So a
line this module maps is one ``orjson`` parses to the same values (every byte of it is
decoded into a typed value, UTF-8 and number ranges checked as ``orjson`` checks them), that
``bulk_check.valid`` passes (the element types mirror ``fhir_validate.SHAPES``, none looser)
and that ``bulk_map`` maps to the same row (the same rules, over Structs); compared by
``tests/exchange/test_bulk_fast.py``.

Repeated texts — codings, reference ranges, interpretations, times — are mapped once per
chunk (``Caches``): frozen Structs are hashable, so a cache hit costs one dict look-up in C.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from rhip.exchange import fhir_map
from rhip.exchange.fhir_validate import parse_datetime
from rhip.exchange.oru import EXAM_SECTIONS

# orjson reads an integer beyond 64 bits as a float, msgspec as an int: such lines go the dict
# path (msgspec takes int64 bounds only; orjson's ints up to 2**64 - 1 go there too)
Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Num = Int | float  # JSON numbers: an int stays an int (its text is "5", not "5.0")


class _Element(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A FHIR element: no unknown fields, hashable (for the caches), not tracked by the GC."""


class Coding(_Element):
    system: str | UnsetType = UNSET
    code: str | UnsetType = UNSET
    display: str | UnsetType = UNSET


class Concept(_Element):
    coding: tuple[Coding, ...] | UnsetType = UNSET
    text: str | UnsetType = UNSET


class Reference(_Element):
    reference: str | UnsetType = UNSET
    display: str | UnsetType = UNSET


class Quantity(_Element):
    value: Num | UnsetType = UNSET
    unit: str | UnsetType = UNSET
    code: str | UnsetType = UNSET
    system: str | UnsetType = UNSET
    comparator: Literal["<", "<=", ">=", ">"] | UnsetType = UNSET


class Range(_Element):  # Observation.referenceRange
    low: Quantity | UnsetType = UNSET
    high: Quantity | UnsetType = UNSET
    text: str | UnsetType = UNSET


class Identifier(_Element):
    system: str | UnsetType = UNSET
    value: str | UnsetType = UNSET
    type: Concept | UnsetType = UNSET


class Period(_Element):
    start: str | UnsetType = UNSET
    end: str | UnsetType = UNSET


class Narrative(_Element):
    div: str | UnsetType = UNSET


class Attachment(_Element):
    contentType: str | UnsetType = UNSET
    data: str | UnsetType = UNSET


class _Resource(_Element, tag_field="resourceType"):
    """``fhir_validate._COMMON`` but ``id`` (a resource with an id is not of the usual shape)."""

    identifier: tuple[Identifier, ...] | UnsetType = UNSET
    subject: Reference | UnsetType = UNSET
    effectiveDateTime: str | UnsetType = UNSET
    effectiveInstant: str | UnsetType = UNSET
    effectivePeriod: Period | UnsetType = UNSET
    issued: str | UnsetType = UNSET
    category: tuple[Concept, ...] | UnsetType = UNSET
    text: Narrative | UnsetType = UNSET


class Observation(_Resource, tag="Observation", kw_only=True):
    """A result: the value types ``bulk_map`` maps in C order; the rarer ones (ratio, range,
    boolean, times) and ``specimen`` are not declared, so they take the dict path."""

    status: Literal["registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"]  # fmt: skip
    code: Concept
    interpretation: tuple[Concept, ...] | UnsetType = UNSET
    valueQuantity: Quantity | UnsetType = UNSET
    valueCodeableConcept: Concept | UnsetType = UNSET
    valueString: str | UnsetType = UNSET
    valueInteger: Int | UnsetType = UNSET
    referenceRange: tuple[Range, ...] | UnsetType = UNSET


class DiagnosticReport(_Resource, tag="DiagnosticReport", kw_only=True):
    """A lab report (``specimen``, ``imagingStudy`` and ``contained`` not declared)."""

    status: Literal["registered", "partial", "preliminary", "final", "amended", "corrected",
                    "appended", "cancelled", "entered-in-error"]  # fmt: skip
    code: Concept
    result: tuple[Reference, ...] | UnsetType = UNSET
    presentedForm: tuple[Attachment, ...] | UnsetType = UNSET
    conclusion: str | UnsetType = UNSET
    conclusionCode: tuple[Concept, ...] | UnsetType = UNSET


class Request(_Element):  # Bundle.entry.request: not read by rhip, typed all the same
    method: str | UnsetType = UNSET
    url: str | UnsetType = UNSET


class Entry(_Element):
    fullUrl: str
    resource: DiagnosticReport | Observation
    request: Request | UnsetType = UNSET


class Bundle(_Element):
    resourceType: Literal["Bundle"]  # not a tag: msgspec takes a lone tagged Struct without it
    entry: tuple[Entry, ...]
    type: str | UnsetType = UNSET
    identifier: Identifier | UnsetType = UNSET


decode = msgspec.json.Decoder(Bundle).decode
Failed = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class Unusual(Exception):
    """Decoded, but not of the usual shape (or something is off): the dict path decides."""


_MISS = object()


class Caches:
    """One chunk's mapped texts, by the (frozen, hashable) Structs they come from."""

    def __init__(self) -> None:
        self.codes: dict[Concept, tuple] = {}
        self.ranges: dict[object, str | None] = {UNSET: None, (): None}
        self.flags: dict[object, str | None] = {UNSET: None, (): None}
        self.times: dict[str, dt.datetime | None] = {}
        self.exam: dict[tuple[Concept, ...], bool] = {}


def report(bundle: Bundle, row: int, caches: Caches) -> tuple[tuple, list[tuple], list[str]]:
    """(report fields but the line, observation rows, fullUrls), as ``bulk_map`` makes them."""
    entries = bundle.entry
    urls = [e.fullUrl for e in entries]
    if not entries or len(set(urls)) != len(urls):
        raise Unusual
    dr = entries[0].resource
    if type(dr) is not DiagnosticReport:
        raise Unusual
    if [r.reference for r in dr.result or ()] != urls[1:]:
        raise Unusual  # every other entry is a result, in order, and nothing else
    subject = ((dr.subject.reference or "") if dr.subject else "").strip()
    tail = "/".join(subject.split("/")[-2:])
    if not subject.startswith("Patient") or subject in urls or ("/" in subject and tail in urls):
        raise Unusual
    system, code, display = _coding(dr.code, caches)
    if dr.category and _exam(dr.category, caches):
        raise Unusual  # an exam's narrative results
    placer, filler = _numbers(dr.identifier)
    collected = _effective(dr, caches)
    issued = _time(dr.issued, caches) if dr.issued is not UNSET else None
    key = f"filler:{filler}" if filler else f"placer:{placer}"
    fields = (subject, None, key, system, code, display, fhir_map.REPORT_STATUS[dr.status],
              placer, filler, collected, issued or collected)  # fmt: skip
    return fields, _observations(entries[1:], row, caches), urls


def _observations(entries: tuple[Entry, ...], report: int, caches: Caches) -> list[tuple]:
    """The results' rows, as ``bulk_map._observation`` makes them (one loop: a call per result
    costs as much as its cached look-ups)."""
    codes, ranges, flags, times, status_of = (caches.codes, caches.ranges, caches.flags,
                                              caches.times, fhir_map.OBS_STATUS.get)  # fmt: skip
    out = []
    for seq, entry in enumerate(entries, start=1):
        obs = entry.resource
        if type(obs) is not Observation:
            raise Unusual
        system, code, display = codes.get(obs.code) or _coding(obs.code, caches)
        rng = ranges.get(obs.referenceRange, _MISS)
        if rng is _MISS:
            rng = _range(obs.referenceRange, caches)
        flag = flags.get(obs.interpretation, _MISS)
        if flag is _MISS:
            flag = _flag(obs.interpretation, caches)
        when = times.get(obs.effectiveDateTime, _MISS)
        if when is _MISS:
            when = _effective(obs, caches)
        q = obs.valueQuantity
        if q is UNSET:
            kind, num, comparator, text, vcode = _other_value(obs)
            unit = None
        elif q.value is UNSET:
            raise Unusual
        else:
            comparator = q.comparator or None
            kind = "SN" if comparator else "NM"
            num, text, vcode = float(q.value), str(q.value), None
            unit = q.unit or q.code or None
            unit = unit and unit[:64]
        out.append((report, seq, system, code, display, kind, num, comparator, text, vcode, unit,
                    rng, flag, status_of(obs.status), when))  # fmt: skip
    return out


def _other_value(obs: Observation) -> tuple:
    """(type, num, comparator, text, code) as ``fhir_map._value`` for a lab result."""
    if obs.valueCodeableConcept is not UNSET:
        _, code, display = _first_coding(obs.valueCodeableConcept)
        return "CWE", None, None, (display or code) or None, (code or None) and code[:64]
    if obs.valueString is not UNSET:
        return "ST", None, None, obs.valueString, None
    if obs.valueInteger is not UNSET:
        return "NM", float(obs.valueInteger), None, str(obs.valueInteger), None
    return "ST", None, None, None, None


def _coding(concept: Concept, caches: Caches) -> tuple:
    """(system, code, display) cut to their columns, as ``fhir_map.coding``; a concept with no
    coding with a code is not of the usual shape."""
    found = caches.codes.get(concept)
    if found is None:
        system, code, display = _first_coding(concept)
        if not code:
            raise Unusual
        found = caches.codes[concept] = (system and system[:200], code[:64], display[:300])
    return found


def _first_coding(concept: Concept | UnsetType) -> tuple:
    if concept is UNSET:
        return None, None, ""
    for c in concept.coding or ():
        if c.code:
            return c.system or None, c.code, c.display or concept.text or ""
    return None, None, concept.text or ""


def _exam(category: tuple[Concept, ...], caches: Caches) -> bool:
    """Whether ``fhir_map._section`` names an exam section, as ``bulk_map`` asks it."""
    found = caches.exam.get(category)
    if found is None:
        codes = [c.code for cat in category for c in cat.coding or () if c.code]
        section = codes[0].upper() if codes else ""  # its section, when none is an exam's
        exam = any(code.upper() in EXAM_SECTIONS for code in codes)
        found = caches.exam[category] = exam or section.upper() in EXAM_SECTIONS
    return found


def _flag(interpretation: tuple[Concept, ...], caches: Caches) -> str | None:
    flag = ""
    for concept in interpretation:
        flag = _first_coding(concept)[1] or ""
        if flag:
            break
    found = caches.flags[interpretation] = flag.upper()[:8] or None
    return found


def _range(ranges: tuple[Range, ...], caches: Caches) -> str | None:
    """``fhir_map._range``; kept for the chunk unless a value is zero (0 == -0.0, but their
    texts differ)."""
    r = ranges[0]
    if r.text:
        return caches.ranges.setdefault(ranges, r.text[:100])
    low, high = _num(r.low), _num(r.high)
    text = f"{low}-{high}" if low and high else f"<{high}" if high else f">{low}" if low else ""
    values = [q.value for q in (r.low, r.high) if q and q.value is not UNSET]
    if all(values):
        caches.ranges[ranges] = text or None
    return text or None


def _num(q: Quantity | UnsetType) -> str:
    return "" if not q or q.value is UNSET else f"{q.value:g}"


def _numbers(identifiers: tuple[Identifier, ...] | UnsetType) -> tuple[str | None, str | None]:
    """``fhir_map._numbers`` for a resource without an id: the line has no report key else."""
    placer, filler = fhir_map.order_numbers(
        (_first_coding(ident.type)[1], ident.value or None) for ident in identifiers or ()
    )
    if not (placer or filler):
        raise Unusual  # the dict path names the missing identifier
    return placer, filler


def _effective(resource: DiagnosticReport | Observation, caches: Caches) -> dt.datetime | None:
    """``fhir_map._effective``: the first of effectiveDateTime, -Instant, -Period.start."""
    if resource.effectiveDateTime is not UNSET:
        return _time(resource.effectiveDateTime, caches)
    if resource.effectiveInstant is not UNSET:
        return _time(resource.effectiveInstant, caches)
    if resource.effectivePeriod is not UNSET:
        return _time(resource.effectivePeriod.start or "", caches)
    return None


def _time(text: str, caches: Caches) -> dt.datetime | None:
    """``parse_datetime``; one that does not parse raises ``FhirInvalid`` (the dict path's)."""
    times = caches.times
    if text in times:
        return times[text]
    found = times[text] = parse_datetime(text, "")
    return found
