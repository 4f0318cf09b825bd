"""ORU^R01 (检验/检查结果) read into reports: pure parsing, no database.

Segment groups as HL7 v2.5.1 defines them, read in order: each PID opens a patient, each OBR a
report of that patient, and OBX, SPM and NTE attach to the OBR before them. A lab report (检验)
carries NM/SN/ST/CWE results with units, reference ranges and abnormal flags; an exam report (检查:
imaging, ECG, endoscopy, pathology) carries TX/FT findings (所见) and an impression (诊断意见).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from rhip.exchange.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE,
    TABLE_VALUE_NOT_FOUND,
    ContentError,
    Location,
)
from rhip.exchange.hl7v2 import Seg, V2Message
from rhip.exchange.models import RESULT_STATUS
from rhip.exchange.patients import PatientRegistration, registration_from_pid
from rhip.exchange.senders import Sender
from rhip.exchange.values import Value, nm_value, read_value

# OBR-24 diagnostic service sections (HL7 table 0074) that make a report an exam (检查)
EXAM_SECTIONS = frozenset(
    ("RAD", "RX", "CT", "MR", "NMR", "NMS", "US", "RUS", "CUS", "OUS", "VUS", "EC", "EN", "PF",
     "CP", "SP", "PAT", "IMG", "XRC", "ES", "ENDO", "ECG")
)  # fmt: skip
# OBX-3 codes and words that mark an exam's impression rather than its findings
IMPRESSION_CODES = frozenset({"IMP", "IMPRESSION", "19005-8", "18834-2", "CONCLUSION"})
IMPRESSION_WORDS = ("诊断", "印象", "结论", "意见", "impression", "conclusion")
SYSTEMS = {"LN": "http://loinc.org", "SCT": "http://snomed.info/sct", "ICD10": "ICD-10"}


@dataclass(slots=True)
class ObservationIn:
    seq: int
    code_system: str | None
    code: str
    display: str
    value: Value
    unit: str | None
    reference_range: str | None
    abnormal_flag: str | None
    status: str | None
    observed_at: dt.datetime | None
    location: Location | None = None  # the OBX it came from (ERR-2 of a quality rejection)


@dataclass(slots=True)
class ReportIn:
    obr: Location
    code_system: str | None
    code: str
    display: str
    status: str
    placer_number: str | None
    filler_number: str | None
    collected_at: dt.datetime | None
    issued_at: dt.datetime | None
    section: str
    specimen: str | None = None
    observations: list[ObservationIn] = field(default_factory=list)

    @property
    def key(self) -> str:
        if self.filler_number:
            return f"filler:{self.filler_number}"
        return f"placer:{self.placer_number}"

    @property
    def kind(self) -> str:
        if self.section.upper() in EXAM_SECTIONS:
            return "exam"
        texts = [o for o in self.observations if o.value.type in ("TX", "FT")]
        return "exam" if self.observations and len(texts) == len(self.observations) else "lab"

    def narrative(self) -> tuple[str | None, str | None]:
        """Exam findings and impression from the TX/FT observations."""
        findings, impression = [], []
        for obs in self.observations:
            if obs.value.type not in ("TX", "FT") or not obs.value.text:
                continue
            label = f"{obs.code} {obs.display}".lower()
            is_imp = obs.code.upper() in IMPRESSION_CODES
            is_imp = is_imp or any(w in label for w in IMPRESSION_WORDS)
            (impression if is_imp else findings).append(obs.value.text)
        return "\n".join(findings) or None, "\n".join(impression) or None


@dataclass(slots=True)
class PatientResults:
    patient: PatientRegistration
    reports: list[ReportIn] = field(default_factory=list)


def read_oru(msg: V2Message, sender: Sender) -> list[PatientResults]:
    """The patients and reports of an ORU^R01; ContentError (AE) names the first bad field."""
    groups: list[PatientResults] = []
    report: ReportIn | None = None
    for seg in msg.segments:
        if seg.name == "PID":
            groups.append(PatientResults(registration_from_pid(seg, sender)))
            report = None
        elif seg.name == "OBR":
            if not groups:
                raise ContentError(
                    "OBR before any PID: an ORU^R01 result needs its patient first",
                    location=Location("PID", 1),
                    hl7_code=REQUIRED_FIELD_MISSING,
                )
            report = _report(seg)
            groups[-1].reports.append(report)
        elif seg.name in ("OBX", "SPM"):
            if report is None:
                raise ContentError(
                    f"{seg.name} before any OBR", location=seg.loc(), hl7_code=SEGMENT_SEQUENCE
                )
            if seg.name == "OBX":
                report.observations.append(_observation(seg, len(report.observations) + 1))
            else:
                report.specimen = _cwe_text(seg, 4) or report.specimen
    if not groups or not any(g.reports for g in groups):
        where = Location("PID", 1) if not groups else Location("OBR", 1)
        what = "PID" if not groups else "OBR"
        raise ContentError(
            f"an ORU^R01 needs a {what} segment", location=where, hl7_code=REQUIRED_FIELD_MISSING
        )
    return groups


def _report(obr: Seg) -> ReportIn:
    placer, filler, collected, issued, section, status = obr.gets(2, 3, 7, 22, 24, 25)
    if not (placer or filler):
        raise ContentError(
            "OBR-3 filler order number (or OBR-2 placer order number) is required: it names the "
            "report across versions",
            location=obr.loc(3),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    code, display, system = obr.comps(4, 3)
    if not code:
        raise ContentError(
            "OBR-4 universal service identifier is missing",
            location=obr.loc(4, 1),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    status = status.upper()
    if status not in RESULT_STATUS:
        raise ContentError(
            f"OBR-25 result status {status!r} is not one of P, F, C, X"
            if status
            else "OBR-25 result status is missing",
            location=obr.loc(25),
            hl7_code=TABLE_VALUE_NOT_FOUND if status else REQUIRED_FIELD_MISSING,
        )
    return ReportIn(
        obr=obr.loc(),
        code_system=_system(system),
        code=code[:64],
        display=display[:300],
        status=RESULT_STATUS[status],
        placer_number=placer[:100] or None,
        filler_number=filler[:100] or None,
        collected_at=obr.ts(7, collected),
        issued_at=obr.ts(22, issued),
        section=section,
        specimen=_cwe_text(obr, 15) or None,
    )


def _observation(obx: Seg, position: int) -> ObservationIn:
    fast = _plain_numeric(obx, position)
    if fast is not None:
        return fast
    code, display, system = obx.comps(3, 3)
    if not code:
        raise ContentError(
            "OBX-3 observation identifier is missing",
            location=obx.loc(3, 1),
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    seq, reference, flag, status, observed = obx.gets(1, 7, 8, 11, 14)
    if seq and not seq.isdigit():
        raise ContentError(
            f"OBX-1 set id {seq!r} is not a number", location=obx.loc(1), hl7_code=DATA_TYPE_ERROR
        )
    value = read_value(obx)
    unit_code, unit_text = obx.comps(6, 2)
    return ObservationIn(
        seq=int(seq) if seq else position,
        code_system=_system(system),
        code=code[:64],
        display=display[:300],
        value=value,
        unit=(unit_code or unit_text)[:64] or None,
        reference_range=reference[:100] or None,
        abnormal_flag=flag.upper()[:8] or None,
        status=status.upper()[:1] or None,
        observed_at=obx.ts(14, observed),
        location=obx.loc(),
    )


def _plain_numeric(obx: Seg, position: int) -> ObservationIn | None:
    """The common OBX — a well-formed NM result in a segment without repetitions, sub-components
    or escapes — read straight from its fields, with exactly ``_observation``'s values; None for
    anything else (other value types, a missing code, a bad set id), which the general read
    handles and explains. A field's value is then its first component, stripped."""
    raw = obx.raw
    if not getattr(raw, "plain", False):
        return None
    f = raw.fields
    n = len(f)
    if n < 6 or f[2].strip().upper() != "NM":
        return None
    if n < 15:
        f = [*f, *_ABSENT[n:]]
    csep = raw.separators[3]
    seq = f[1].split(csep, 1)[0].strip()
    code, display, system = _coding(f[3], csep)
    if not code or (seq and not seq.isdigit()):
        return None
    # by position, in field order: a keyword call costs twice as much on this hot path
    return ObservationIn(
        int(seq) if seq else position,  # seq
        system,  # code_system
        code,
        display,
        nm_value(f[5].split(csep, 1)[0].strip()),  # value
        _unit(f[6], csep),
        f[7].split(csep, 1)[0].strip()[:100] or None,  # reference_range
        f[8].split(csep, 1)[0].strip().upper()[:8] or None,  # abnormal_flag
        f[11].split(csep, 1)[0].strip().upper()[:1] or None,  # status
        obx.ts(14, f[14].split(csep, 1)[0].strip()),  # observed_at
        obx.loc(),  # location
    )


_ABSENT = ("",) * 15  # OBX fields past a segment's end read as ''


# A lab sends the same few hundred tests and units over and over: their reads are remembered.
@lru_cache(maxsize=4096)
def _coding(field: str, csep: str) -> tuple[str, str, str | None]:
    """A plain OBX-3 as code, display and code system, cut to their columns."""
    code, display, system, *_ = (*field.split(csep, 3), "", "", "")
    return code.strip()[:64], display.strip()[:300], _system(system.strip())


@lru_cache(maxsize=1024)
def _unit(field: str, csep: str) -> str | None:
    """A plain OBX-6: the unit's code, else its text."""
    unit_code, unit_text, *_ = (*field.split(csep, 2), "", "")
    return (unit_code.strip() or unit_text.strip())[:64] or None


def _system(raw: str) -> str | None:
    return SYSTEMS.get(raw.upper(), raw[:200]) if raw else None


def _cwe_text(seg: Seg, field_no: int) -> str:
    code, text = seg.comps(field_no, 2)
    return (text or code)[:200]
