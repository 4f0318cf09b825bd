"""Checking inbound FHIR R4 resources (FHIR 资源校验) and the errors of the FHIR ingest paths.

Each resource is validated with the ``fhir.resources`` R4B models (R4B is R4 for the resources
rhip accepts: Patient, DiagnosticReport, Observation, Specimen, ImagingStudy). Their pydantic
errors become OperationOutcome issues whose ``expression`` is the failing element's path from the
root of the request, e.g. ``Bundle.entry[3].resource.valueQuantity.value``.

>>> from rhip.exchange.fhir_validate import parse_datetime
>>> parse_datetime("2024-03-01T08:00:00+08:00", "x").isoformat()
'2024-03-01T00:00:00+00:00'
>>> parse_datetime("2024-03", "x").isoformat()
'2024-02-29T16:00:00+00:00'
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from pydantic import ValidationError

from rhip.kernel.clock import CST
from rhip.kernel.errors import (
    Forbidden,
    InvalidInput,
    MalformedInput,
    NotFound,
    NotSupported,
    RhipError,
)

# resource types a Bundle, an NDJSON line or $import may carry
ACCEPTED = ("Patient", "DiagnosticReport", "Observation", "Specimen", "ImagingStudy")
_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_FULL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})")


class FhirInvalid(InvalidInput):
    """422: a resource is understood but an element is missing or wrong (资源内容错误)."""


class FhirMalformed(MalformedInput):
    """400: the body or a line is not JSON, or not a resource rhip takes here."""


class FhirNotSupported(NotSupported):
    """400: a resource type, Bundle type or request method rhip does not accept."""


class UnknownReference(NotFound):
    """404: a reference (``Patient?identifier=…``, ``Observation/…``) resolves to nothing."""


class AmbiguousReference(RhipError):
    """412: a conditional reference matches more than one patient."""

    status = 412
    issue_type = "multiple-matches"


class SenderUnknown(Forbidden):
    """403: ``X-Rhip-Sender`` names no registered, active institution."""


def resource_class(resource_type: str) -> Any:
    """The R4B model class of an accepted resource type."""
    return _classes()[resource_type]


@functools.cache
def _classes() -> dict[str, Any]:
    # imported lazily: loading the models takes ~0.3 s, paid once per process
    from fhir.resources.R4B import get_fhir_model_class

    return {name: get_fhir_model_class(name) for name in ACCEPTED}


def check_resource(resource: Any, path: str) -> dict[str, Any]:
    """Validate one resource against its R4B model; FhirInvalid/FhirMalformed naming the path.

    Returns the resource (the JSON as sent: rhip maps the dict, not the model).
    """
    kind = _accepted_kind(resource, path)
    try:
        resource_class(kind).model_validate(resource)
    except ValidationError as exc:
        raise _invalid(exc, path) from None
    return resource


def _invalid(exc: ValidationError, path: str) -> RhipError:
    errors: list[RhipError] = []
    for err in exc.errors()[:20]:
        where = element_path(path, err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append(FhirInvalid(f"{where}: {msg}", expression=where))
    if len(errors) == 1:
        return errors[0]
    from rhip.kernel.errors import ManyErrors

    return ManyErrors(errors)


def element_path(root: str, loc: tuple[Any, ...]) -> str:
    """``root`` plus a pydantic error location, list indices in brackets.

    >>> element_path("Observation", ("referenceRange", 0, "low"))
    'Observation.referenceRange[0].low'
    """
    text = root
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part and not str(part).startswith(("function-", "model_")):
            text += f".{part}"
    return text


def parse_datetime(value: str | None, path: str) -> dt.datetime | None:
    """A FHIR date/dateTime/instant as an aware UTC datetime; partial dates start their period.

    Without an offset the time is CST (UTC+8), as on the HL7 v2 path.
    """
    if not value:
        return None
    try:
        return _utc_of(value)
    except ValueError as exc:  # the message names the value; the path is the caller's
        raise FhirInvalid(f"{path}: {exc}", expression=path) from None


@functools.lru_cache(maxsize=4096)  # a report's results share one effective time
def _utc_of(value: str) -> dt.datetime:
    """``_parse_utc``, at ~1/5 of its cost for a full time with an offset (what feeds send)."""
    if _FULL.fullmatch(value):
        try:  # the same instant as _parse_utc's for every value of this shape it takes
            return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            pass  # _parse_utc says why (or takes it: e.g. a +05:60 offset)
    return _parse_utc(value)


def _parse_utc(value: str) -> dt.datetime:
    m = _DATETIME.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a FHIR dateTime")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        tz = CST if not zone else dt.UTC if zone == "Z" else _offset(zone)
        micro = int((frac or ".0")[1:7].ljust(6, "0"))
        stamp = dt.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), micro, tzinfo=tz,
        )  # fmt: skip
        return stamp.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:  # overflow: a time before year 1 in UTC
        raise ValueError(f"{value!r}: {exc}") from None


@functools.lru_cache(maxsize=64)
def _offset(zone: str) -> dt.tzinfo:
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


# -- fast structural checks (bulk NDJSON) ---------------------------------------------------------
# The elements rhip reads (fhir_map), each checked for its JSON type and, for codes, its value
# set: what the mapping needs to be safe, at ~1/40 of the R4B models' cost. Unknown elements are
# not rejected here (the models would); see docs/fhir.md "Validation on bulk import".
Shape = Any  # a callable (value, path) → None that raises FhirInvalid


def _bad(path: str, what: str) -> FhirInvalid:
    return FhirInvalid(f"{path}: Input should be {what}", expression=path)


def _is(kind: type | tuple[type, ...], what: str) -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            raise _bad(path, what)

    return check


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _one_of(*values: str) -> Shape:
    def check(value: Any, path: str) -> None:
        if value not in values:
            raise FhirInvalid(
                f"{path}: Input should be one of {', '.join(map(repr, values))}", expression=path
            )

    return check


def _obj(spec: dict[str, Shape], required: tuple[str, ...] = ()) -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _bad(path, "an object")
        for name in required:
            if value.get(name) is None:
                raise FhirInvalid(f"{path}.{name}: Field required", expression=f"{path}.{name}")
        for name, sub in spec.items():
            if name in value and value[name] is not None:
                sub(value[name], f"{path}.{name}")

    return check


def _list(item: Shape) -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _bad(path, "a list")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")

    return check


_STR, _NUM, _INT, _BOOL = (_is(str, "a string"), _is((int, float), "a valid number"),
                           _is(int, "a valid integer"), _is(bool, "a valid boolean"))  # fmt: skip
_CC = _obj({"coding": _list(_obj({"system": _STR, "code": _STR, "display": _STR})), "text": _STR})
_REF = _obj({"reference": _STR, "display": _STR})
_QTY = _obj({"value": _NUM, "unit": _STR, "code": _STR, "system": _STR,
             "comparator": _one_of("<", "<=", ">=", ">")})  # fmt: skip
_IDENT = _obj({"system": _STR, "value": _STR, "type": _CC})
_PERIOD = _obj({"start": _STR, "end": _STR})
_COMMON = {"id": _STR, "identifier": _list(_IDENT), "subject": _REF, "effectiveDateTime": _STR,
           "effectiveInstant": _STR, "effectivePeriod": _PERIOD, "issued": _STR,
           "category": _list(_CC), "code": _CC, "text": _obj({"div": _STR})}  # fmt: skip
_OBSERVATION = {
    **_COMMON, "status": _one_of("registered", "preliminary", "final", "amended", "corrected",
                                 "cancelled", "entered-in-error", "unknown"),
    "specimen": _REF, "interpretation": _list(_CC), "valueQuantity": _QTY,
    "valueCodeableConcept": _CC, "valueString": _STR, "valueInteger": _INT,
    "valueRatio": _obj({"numerator": _QTY, "denominator": _QTY}),
    "valueRange": _obj({"low": _QTY, "high": _QTY}), "valueBoolean": _BOOL,
    "valueDateTime": _STR, "valueTime": _STR,
    "referenceRange": _list(_obj({"low": _QTY, "high": _QTY, "text": _STR})),
}  # fmt: skip
_REPORT = {
    **_COMMON, "status": _one_of("registered", "partial", "preliminary", "final", "amended",
                                 "corrected", "appended", "cancelled", "entered-in-error"),
    "result": _list(_REF), "specimen": _list(_REF), "imagingStudy": _list(_REF),
    "presentedForm": _list(_obj({"contentType": _STR, "data": _STR})), "conclusion": _STR,
    "conclusionCode": _list(_CC),
}  # fmt: skip
_PATIENT = {
    "id": _STR, "identifier": _list(_IDENT),
    "gender": _one_of("male", "female", "other", "unknown"),
    "birthDate": _STR, "name": _list(_obj({"text": _STR, "family": _STR, "given": _list(_STR)})),
    "telecom": _list(_obj({"system": _STR, "value": _STR})),
    "address": _list(_obj({"text": _STR, "line": _list(_STR)})),
}  # fmt: skip
SHAPES: dict[str, Shape] = {
    "Observation": _obj(_OBSERVATION, ("status", "code")),
    "DiagnosticReport": _obj(_REPORT, ("status", "code")),
    "Patient": _obj(_PATIENT),
    "Specimen": _obj({"id": _STR, "type": _CC}),
    "ImagingStudy": _obj({"id": _STR, "status": _STR}, ("status",)),
}


def _contained(value: Any, path: str) -> None:
    kind = value.get("resourceType") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in SHAPES:  # a list here is unhashable
        raise FhirNotSupported(f"{path}.resourceType {kind!r} is not accepted here",
                               expression=f"{path}.resourceType")  # fmt: skip
    SHAPES[kind](value, path)


def _accepted_kind(resource: Any, path: str) -> str:
    """The resource's type, if it is an object of a type rhip accepts; else the 4xx saying why."""
    if not isinstance(resource, dict):
        raise FhirMalformed(f"{path} must be a JSON object (a FHIR resource)", expression=path)
    kind = resource.get("resourceType")
    if kind not in ACCEPTED:
        raise FhirNotSupported(
            f"{path}.resourceType {kind!r} is not accepted here; one of {', '.join(ACCEPTED)}",
            expression=f"{path}.resourceType",
        )
    return kind


def check_structure(resource: Any, path: str) -> dict[str, Any]:
    """``check_resource``'s fast twin for bulk import: the type (and value set) of every element
    rhip reads, including contained resources; the error names the element's path."""
    kind = _accepted_kind(resource, path)
    SHAPES[kind](resource, path)
    contained = resource.get("contained")
    if contained is not None:
        _list(_contained)(contained, f"{path}.contained")
    return resource
