"""FHIR test builders: a Patient, lab Observations, a DiagnosticReport, Bundles (synthetic data)."""

from __future__ import annotations

import json
from typing import Any

from exchange.support import RID, SENDER
from rhip.kernel import systems

LOINC = "http://loinc.org"


def patient(mrn: str = "M1", rid: str | None = RID, full_url: str = "urn:uuid:pat-1") -> dict:
    idents = [{"system": systems.mrn_system(SENDER), "value": mrn}]
    if rid:
        idents.insert(0, {"system": systems.RESIDENT_ID, "value": rid})
    return {
        "fullUrl": full_url,
        "resource": {
            "resourceType": "Patient", "identifier": idents,
            "name": [{"family": "张", "given": ["三"]}], "gender": "male",
            "birthDate": "1949-12-31",
        },
        "request": {"method": "POST", "url": "Patient"},
    }  # fmt: skip


def observation(n: int, subject: str, value: Any = 5.6, code: str = "2345-7") -> dict:
    return {
        "fullUrl": f"urn:uuid:obs-{n}",
        "resource": {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": "葡萄糖"}]},
            "subject": {"reference": subject},
            "effectiveDateTime": "2024-03-01T08:00:00+08:00",
            "valueQuantity": {"value": value, "unit": "mmol/L",
                              "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 6.1}}],
            "interpretation": [{"coding": [{"code": "H" if value and value > 6.1 else "N"}]}],
        },
        "request": {"method": "POST", "url": "Observation"},
    }  # fmt: skip


def report(subject: str, results: list[str], *, filler: str = "F1001", status: str = "final",
           issued: str = "2024-03-01T10:30:00+08:00", category: str = "LAB",
           code: str = "24331-1") -> dict:  # fmt: skip
    return {
        "fullUrl": f"urn:uuid:dr-{filler}",
        "resource": {
            "resourceType": "DiagnosticReport", "status": status,
            "identifier": [{"type": {"coding": [{"code": "FILL"}]}, "value": filler}],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                      "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": "血脂四项"}]},
            "subject": {"reference": subject},
            "effectiveDateTime": "2024-03-01T08:00:00+08:00", "issued": issued,
            "result": [{"reference": r} for r in results],
        },
        "request": {"method": "POST", "url": "DiagnosticReport"},
    }  # fmt: skip


def bundle(entries: list[dict], kind: str = "transaction", ident: str | None = "B1") -> dict:
    out: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": entries}
    if ident:
        out["identifier"] = {"system": "urn:test:bundle", "value": ident}
    return out


def lab_transaction(ident: str = "B1", filler: str = "F1001", **kw: Any) -> dict:
    """Patient + DiagnosticReport + two Observations referring to the Patient entry."""
    return bundle(
        [patient(), observation(1, "urn:uuid:pat-1"), observation(2, "urn:uuid:pat-1", 7.2),
         report("urn:uuid:pat-1", ["urn:uuid:obs-1", "urn:uuid:obs-2"], filler=filler, **kw)],
        ident=ident,
    )  # fmt: skip


def encode(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def json_paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every key/index path into a JSON value (for tests that mutate one element)."""
    out = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += json_paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_paths(v, (*at, i))
    return out
