"""Stored reports and observations rendered as FHIR R4 JSON (DiagnosticReport, Observation)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rhip.exchange.fhir_map import OBS_CATEGORY, V2_0074

KIND_SYSTEM = "urn:rhip:cs:report-kind"  # lab 检验 | exam 检查
# OBX-11 → Observation.status
OBS_STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "X": "cancelled",
              "W": "entered-in-error", "I": "registered", "R": "preliminary"}  # fmt: skip
COMPARATORS = {"<", "<=", ">=", ">"}


def _instant(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _concept(system: str | None, code: str | None, display: str | None) -> dict[str, Any]:
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    out: dict[str, Any] = {"coding": [coding]} if code else {}
    if display:
        out["text"] = display
    return out


def _category(kind: str) -> list[dict[str, Any]]:
    if kind == "lab":
        first = {"system": V2_0074, "code": "LAB", "display": "Laboratory"}
    else:
        first = {"system": V2_0074, "code": "RAD", "display": "Radiology"}
    return [{"coding": [first, {"system": KIND_SYSTEM, "code": kind}]}]


def render_report(row: Mapping[str, Any], observation_ids: list[int]) -> dict[str, Any]:
    """One stored report version as a DiagnosticReport (``id`` is the version's id)."""
    identifiers = []
    if row["filler_number"]:
        identifiers.append({"type": {"coding": [{"code": "FILL"}]}, "value": row["filler_number"]})
    if row["placer_number"]:
        identifiers.append({"type": {"coding": [{"code": "PLAC"}]}, "value": row["placer_number"]})
    status = row["status"]
    out: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": row["id"],
        "meta": {"versionId": str(row["version"]), "lastUpdated": _instant(row["recorded_at"])},
        "identifier": identifiers,
        "status": status,
        "category": _category(row["kind"]),
        "code": _concept(row["code_system"], row["code"], row["display"]),
        "subject": {"reference": f"Patient/{row['patient_id']}"},
        "issued": _instant(row["issued_at"]),
        "performer": [{"reference": f"Organization/{row['institution_id']}"}],
        "result": [{"reference": f"Observation/{i}"} for i in observation_ids],
    }
    if row["collected_at"]:
        out["effectiveDateTime"] = _instant(row["collected_at"])
    if row["specimen"]:
        out["specimen"] = [{"display": row["specimen"]}]
    if row["conclusion"]:
        out["conclusion"] = row["conclusion"]
    if row["findings"]:
        out["text"] = {"status": "generated", "div": _div(row["findings"])}
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def _div(text: str) -> str:
    import html

    return f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(text)}</div>'


def render_observation(row: Mapping[str, Any]) -> dict[str, Any]:
    """One stored observation (with its report's status and kind) as an Observation."""
    code = _concept(row["code_system"], row["code"], row["display"])
    if row.get("std_code") and (row["std_system"], row["std_code"]) != (
        row["code_system"],
        row["code"],
    ):
        std = {"system": row["std_system"], "code": row["std_code"], "display": row["std_display"]}
        code.setdefault("coding", []).append({k: v for k, v in std.items() if v})
    status = OBS_STATUS.get(row["status"] or "", row["report_status"])
    if row["report_status"] == "cancelled":
        status = "cancelled"
    category = "laboratory" if row["report_kind"] == "lab" else "imaging"
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(row["id"]),
        "status": status,
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": code,
        "subject": {"reference": f"Patient/{row['patient_id']}"},
        "effectiveDateTime": _instant(row["observed_at"]),
        "issued": _instant(row["issued_at"]),
        "performer": [{"reference": f"Organization/{row['institution_id']}"}],
        "derivedFrom": [{"reference": f"DiagnosticReport/{row['report_id']}"}],
        **_value(row),
    }
    if row["abnormal_flag"]:
        out["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": row["abnormal_flag"]}]}]  # fmt: skip
    if row["reference_range"]:
        out["referenceRange"] = [{"text": row["reference_range"]}]
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def _value(row: Mapping[str, Any]) -> dict[str, Any]:
    vtype = row["value_type"]
    if row["value_num"] is not None and vtype in ("NM", "SN"):
        q: dict[str, Any] = {"value": row["value_num"]}
        if row["comparator"] in COMPARATORS:
            q["comparator"] = row["comparator"]
        if row["unit"]:
            q["unit"] = row["unit"]
        if row.get("std_unit") and row["std_unit"] == row["unit"]:
            q |= {"system": "http://unitsofmeasure.org", "code": row["std_unit"]}
        return {"valueQuantity": q}
    if vtype in ("CWE", "CE", "CNE") and (row["value_code"] or row["value_text"]):
        return {"valueCodeableConcept": _concept(None, row["value_code"], row["value_text"])}
    if row["value_text"]:
        return {"valueString": row["value_text"]}
    return {
        "dataAbsentReason": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "unknown",
                }
            ]
        }
    }
