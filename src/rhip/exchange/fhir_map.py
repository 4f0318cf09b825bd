"""FHIR R4 resources mapped to rhip's neutral shapes (FHIR 映射): ``ReportIn``/``ObservationIn``
for the report store and ``PatientRegistration`` for the MPI — the same shapes the HL7 v2 path
produces, so both channels share versioning, quality rules and storage.

Pure functions on validated JSON (``fhir_validate.check_resource`` ran first); references to
Observations and Specimens are looked up through a ``Refs`` callable the caller provides.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Callable
from typing import Any

from rhip.exchange.fhir_validate import FhirInvalid, UnknownReference, parse_datetime
from rhip.exchange.oru import EXAM_SECTIONS, ObservationIn, ReportIn
from rhip.exchange.patients import Identifier, PatientRegistration
from rhip.exchange.senders import Sender
from rhip.exchange.values import Value
from rhip.kernel import systems
from rhip.kernel.clock import CST
from rhip.kernel.errors import InvalidInput
from rhip.kernel.ids import validate_resident_id

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service sections
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# DiagnosticReport.status → the report store's statuses (HL7 OBR-25 vocabulary)
REPORT_STATUS = {
    "registered": "preliminary", "partial": "preliminary", "preliminary": "preliminary",
    "final": "final", "amended": "corrected", "corrected": "corrected", "appended": "corrected",
    "cancelled": "cancelled", "entered-in-error": "cancelled",
}  # fmt: skip
# Observation.status → OBX-11 (HL7 table 0085)
OBS_STATUS = {
    "registered": "I", "preliminary": "P", "final": "F", "amended": "C", "corrected": "C",
    "cancelled": "X", "entered-in-error": "W",
}  # fmt: skip
_EXAM_OBS_CATEGORIES = frozenset({"imaging", "procedure"})
_TAGS = re.compile(r"<[^>]+>")

# (reference, path of the referring element) → (resource, its path), or None when not local
Refs = Callable[[str, str], "tuple[dict[str, Any], str] | None"]


def coding(concept: dict[str, Any] | None) -> tuple[str | None, str | None, str]:
    """(system, code, display) of a CodeableConcept's first coding that has a code."""
    concept = concept or {}
    for c in concept.get("coding") or []:
        if c.get("code"):
            return c.get("system"), c["code"], c.get("display") or concept.get("text") or ""
    return None, None, concept.get("text") or ""


def report_in(dr: dict[str, Any], path: str, refs: Refs) -> ReportIn:
    """A DiagnosticReport (with its result Observations) as a report version."""
    system, code, display = coding(dr.get("code"))
    if not code:
        raise _missing(f"{path}.code.coding", "DiagnosticReport.code needs a coding with a code")
    placer, filler = _numbers(dr, path)
    section = _section(dr)
    report = ReportIn(
        obr=None,  # type: ignore[arg-type]  # no HL7 location: quality rules use FHIR paths
        code_system=(system or None) and system[:200],
        code=code[:64],
        display=display[:300],
        status=REPORT_STATUS[dr["status"]],  # the R4B model checked the value set
        placer_number=placer,
        filler_number=filler,
        collected_at=_effective(dr, path),
        issued_at=parse_datetime(dr.get("issued"), f"{path}.issued") or _effective(dr, path),
        section=section,
        specimen=_specimen_text(dr.get("specimen"), f"{path}.specimen", refs),
    )
    exam = section.upper() in EXAM_SECTIONS
    for i, ref in enumerate(dr.get("result") or []):
        where = f"{path}.result[{i}]"
        found = refs(ref.get("reference", ""), where)
        if found is None:
            raise UnknownReference(
                f"{where}: {ref.get('reference')!r} is neither contained nor another entry of "
                "this request",
                expression=where,
            )
        obs, obs_path = found
        item = observation_in(obs, obs_path, len(report.observations) + 1, exam, refs)
        report.observations.append(item)
        report.specimen = report.specimen or _specimen_text(obs.get("specimen"), obs_path, refs)
    report.observations += _narrative(dr, len(report.observations), exam)
    return report


def standalone_report(obs: dict[str, Any], path: str, refs: Refs) -> ReportIn:
    """An Observation no DiagnosticReport refers to, stored as a report of one result."""
    system, code, display = coding(obs.get("code"))
    categories = {c for cat in obs.get("category") or [] for _, c, _ in [coding(cat)]}
    section = "IMG" if categories & _EXAM_OBS_CATEGORIES else "LAB"
    placer, filler = _numbers(obs, path)
    when = _effective(obs, path)
    report = ReportIn(
        obr=None,  # type: ignore[arg-type]
        code_system=(system or None) and system[:200],
        code=(code or "")[:64],
        display=display[:300],
        status=REPORT_STATUS.get(obs["status"], "final"),
        placer_number=placer,
        filler_number=filler,
        collected_at=when,
        issued_at=parse_datetime(obs.get("issued"), f"{path}.issued") or when,
        section=section,
        specimen=_specimen_text(obs.get("specimen"), f"{path}.specimen", refs),
    )
    report.observations.append(observation_in(obs, path, 1, section == "IMG", refs))
    return report


def observation_in(
    obs: dict[str, Any], path: str, seq: int, exam: bool, refs: Refs | None = None
) -> ObservationIn:
    """One Observation as an OBX-like result: value, unit, range, abnormal flag, status."""
    system, code, display = coding(obs.get("code"))
    if not code:
        raise _missing(f"{path}.code.coding", "Observation.code needs a coding with a code")
    value, unit = _value(obs, path, exam)
    flag = next((c for _, c, _ in (coding(i) for i in obs.get("interpretation") or []) if c), "")
    return ObservationIn(
        seq=seq,
        code_system=(system or None) and system[:200],
        code=code[:64],
        display=display[:300],
        value=value,
        unit=(unit or None) and unit[:64],
        reference_range=_range(obs.get("referenceRange") or []),
        abnormal_flag=flag.upper()[:8] or None,
        status=OBS_STATUS.get(obs["status"]),
        observed_at=_effective(obs, path),
    )


def _value(obs: dict[str, Any], path: str, exam: bool) -> tuple[Value, str | None]:
    if "valueQuantity" in obs:
        q = obs["valueQuantity"]
        if q.get("value") is None:
            raise _missing(f"{path}.valueQuantity.value", "valueQuantity needs a value")
        num, comparator = float(q["value"]), q.get("comparator")
        kind = "SN" if comparator else "NM"
        return Value(kind, num=num, comparator=comparator, text=str(q["value"])), (
            q.get("unit") or q.get("code")
        )
    if "valueCodeableConcept" in obs:
        _, code, display = coding(obs["valueCodeableConcept"])
        return Value("CWE", text=(display or code) or None, code=(code or None) and code[:64]), None
    if "valueString" in obs:
        return Value("TX" if exam else "ST", text=obs["valueString"]), None
    if "valueInteger" in obs:
        return Value("NM", num=float(obs["valueInteger"]), text=str(obs["valueInteger"])), None
    if "valueRatio" in obs:
        r = obs["valueRatio"]
        text = f"{_num(r.get('numerator'))}:{_num(r.get('denominator'))}"
        return Value("SN", text=text), None
    if "valueRange" in obs:
        r = obs["valueRange"]
        return Value("SN", text=f"{_num(r.get('low'))}-{_num(r.get('high'))}"), None
    for key in ("valueBoolean", "valueDateTime", "valueTime"):
        if key in obs:
            return Value("ST", text=str(obs[key])), None
    return Value("ST"), None  # no value: dataAbsentReason, or components only


def _num(q: dict[str, Any] | None) -> str:
    return "" if not q or q.get("value") is None else f"{q['value']:g}"


def _range(ranges: list[dict[str, Any]]) -> str | None:
    if not ranges:
        return None
    r = ranges[0]
    if r.get("text"):
        return r["text"][:100]
    low, high = _num(r.get("low")), _num(r.get("high"))
    text = f"{low}-{high}" if low and high else f"<{high}" if high else f">{low}" if low else ""
    return text or None


def order_numbers(identifiers) -> tuple[str | None, str | None]:
    """(placer, filler) from (type code, value) pairs: the first PLAC; the first FILL, else the
    first identifier of another type. Values cut to 100 characters; empty ones skipped."""
    placer = typed = untyped = None
    for kind, value in identifiers:
        value = (value or "")[:100] or None
        if kind == "PLAC":
            placer = placer or value
        elif kind == "FILL":
            typed = typed or value
        else:
            untyped = untyped or value
    return placer, typed or untyped


def _numbers(resource: dict[str, Any], path: str) -> tuple[str | None, str | None]:
    """(placer, filler) numbers: identifier typed PLAC/FILL, else the first identifier, else the
    resource id — what names the report across its versions.
    """
    placer, filler = order_numbers(
        (coding(ident.get("type"))[1], ident.get("value"))
        for ident in resource.get("identifier") or []
    )
    if not (placer or filler) and resource.get("id"):
        filler = f"{resource['resourceType']}/{resource['id']}"[:100]
    if not (placer or filler):
        raise _missing(
            f"{path}.identifier",
            f"{resource['resourceType']} needs an identifier (the filler order number) or an id: "
            "it names the report across versions",
        )
    return placer, filler


def _section(dr: dict[str, Any]) -> str:
    codes = [c for cat in dr.get("category") or [] for c in (cat.get("coding") or [])]
    for c in codes:
        if (c.get("code") or "").upper() in EXAM_SECTIONS:
            return c["code"].upper()
    if dr.get("imagingStudy"):
        return "IMG"
    return next(((c.get("code") or "").upper() for c in codes if c.get("code")), "")


def _effective(resource: dict[str, Any], path: str):
    if "effectiveDateTime" in resource:
        return parse_datetime(resource["effectiveDateTime"], f"{path}.effectiveDateTime")
    if "effectiveInstant" in resource:
        return parse_datetime(resource["effectiveInstant"], f"{path}.effectiveInstant")
    if "effectivePeriod" in resource:
        start = resource["effectivePeriod"].get("start")
        return parse_datetime(start, f"{path}.effectivePeriod.start")
    return None


def _specimen_text(ref: Any, path: str, refs: Refs) -> str | None:
    first = (ref[0] if isinstance(ref, list) and ref else ref) or None
    if not isinstance(first, dict):
        return None
    found = refs(first.get("reference", ""), path) if first.get("reference") else None
    if found is not None:
        _, code, display = coding(found[0].get("type"))
        return (display or code or "")[:200] or None
    return (first.get("display") or "")[:200] or None


def _narrative(dr: dict[str, Any], seq: int, exam: bool) -> list[ObservationIn]:
    """Exam findings (presentedForm text, else the narrative) and the conclusion, as TX results:
    the shape the report store reads findings (所见) and impression (诊断意见) from.
    """
    if not exam:
        return []
    out = []
    findings = _presented_text(dr.get("presentedForm") or []) or _div_text(dr.get("text"))
    if findings:
        out.append(_text_result(seq + 1, "FINDINGS", "检查所见 findings", findings))
    conclusion = dr.get("conclusion") or ", ".join(
        d for d in (coding(c)[2] for c in dr.get("conclusionCode") or []) if d
    )
    if conclusion:
        out.append(_text_result(seq + len(out) + 1, "IMP", "诊断意见 impression", conclusion))
    return out


def _text_result(seq: int, code: str, display: str, text: str) -> ObservationIn:
    return ObservationIn(
        seq, None, code, display, Value("TX", text=text), None, None, None, "F", None
    )


def _presented_text(forms: list[dict[str, Any]]) -> str | None:
    for form in forms:
        if (form.get("contentType") or "").startswith("text/") and form.get("data"):
            try:
                return base64.b64decode(form["data"]).decode("utf-8").strip() or None
            except (binascii.Error, UnicodeDecodeError):
                continue
    return None


def _div_text(narrative: dict[str, Any] | None) -> str | None:
    if not narrative or not narrative.get("div"):
        return None
    return html.unescape(_TAGS.sub(" ", narrative["div"])).strip() or None


def _missing(where: str, message: str) -> FhirInvalid:
    return FhirInvalid(f"{where}: {message}", expression=where)


# -- patients ------------------------------------------------------------------------------------
_DOCUMENTS = {systems.PASSPORT, systems.HKMO_PERMIT, systems.TW_PERMIT, systems.INSURANCE_CARD}


def registration(patient: dict[str, Any], path: str, sender: Sender) -> PatientRegistration:
    """A Patient resource as a registration at the sending institution (患者登记)."""
    identifiers: list[Identifier] = []
    for i, ident in enumerate(patient.get("identifier") or []):
        found = _patient_identifier(ident, f"{path}.identifier[{i}]", sender)
        if found is not None and found not in identifiers:
            identifiers.append(found)
    if not identifiers:
        raise _missing(
            f"{path}.identifier",
            "the Patient has no usable identifier: a resident ID (system "
            f"{systems.RESIDENT_ID}), an MRN (system {systems.MRN_PREFIX}<credit code>, or type "
            "MR) or a passport",
        )
    born = patient.get("birthDate")
    birth = parse_datetime(born, f"{path}.birthDate") if born else None
    return PatientRegistration(
        identifiers=tuple(identifiers),
        source=sender,
        name=_name(patient.get("name") or []),
        gender=patient.get("gender"),
        birth_date=birth.astimezone(CST).date() if birth else None,
        phone=next(
            (
                t.get("value", "")
                for t in patient.get("telecom") or []
                if t.get("system") == "phone"
            ),
            "",
        ),
        address=next(
            (a.get("text") or " ".join(a.get("line") or []) for a in patient.get("address") or []),
            "",
        ),
    )


def _patient_identifier(ident: dict[str, Any], where: str, sender: Sender) -> Identifier | None:
    system, value = ident.get("system") or "", (ident.get("value") or "").strip()
    if not value:
        return None
    if system == systems.RESIDENT_ID:
        try:
            value = validate_resident_id(value, expression=f"{where}.value").number
        except InvalidInput as exc:
            raise FhirInvalid(exc.message, expression=f"{where}.value") from None
        return Identifier(system, value)
    if system.startswith(systems.MRN_PREFIX) or system in _DOCUMENTS:
        return Identifier(system, value)
    _, kind, _ = coding(ident.get("type"))
    if kind == systems.HL7_MRN:  # the sender's own patient number under its own system URI
        return Identifier(systems.mrn_system(sender.credit_code), value)
    return None


def _name(names: list[dict[str, Any]]) -> str:
    for n in names:
        if n.get("text"):
            return n["text"]
        family, given = n.get("family") or "", "".join(n.get("given") or [])
        if any("\u4e00" <= ch <= "\u9fff" for ch in family + given):
            return family + given  # Chinese names are written without a space
        if family or given:
            return " ".join(p for p in (" ".join(n.get("given") or []), family) if p)
    return ""
