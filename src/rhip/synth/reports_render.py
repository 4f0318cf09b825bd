"""The synthetic report stream as institutions send it: HL7 v2.5.1 ORU^R01 messages and FHIR
NDJSON (one transaction Bundle per line), and files of both under ``var/synth``.

HL7: MSH-4 the institution's credit code, MSH-18 ``UNICODE UTF-8`` (a few ``GB 18030-2000``,
encoded so), PID-3 the MRN (type MR, assigned by the institution) and, when valid, the resident ID
(NNCHN). FHIR: the subject is the conditional reference
``Patient?identifier=urn:rhip:id:mrn:<credit code>|<mrn>``, resolved by the MPI.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rhip.kernel import systems
from rhip.synth.reports_data import EXAMS, PANELS

LOINC = "http://loinc.org"
LOCAL = "urn:rhip:cs:local-item"  # + ":" + credit code: an institution's own item codes
STATUS = {"P": "preliminary", "F": "final", "C": "corrected"}
_NS = uuid.UUID("6f1d8a52-3c0e-4b7a-9d2e-5a4c3b2a1f00")  # fixed: the same seed, the same ids
_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def to_hl7(reports: pd.DataFrame, observations: pd.DataFrame) -> list[bytes]:
    """One ORU^R01 per row of ``reports`` (in its order), each encoded in its MSH-18 charset."""
    head = _headers(reports)
    obs = observations.merge(
        reports[["report", "loinc", "status"]], on="report", how="left", sort=False
    )
    tx = obs["value_type"] == "TX"
    code = np.where(
        obs["loinc"] | tx,
        obs["loinc_code"] + "^" + _esc(obs["display"]) + "^LN",
        obs["local_code"] + "^" + _esc(obs["display"]) + "^L",
    )
    stamp = _ts(reports["collected_at"]).to_numpy()[obs["report"].to_numpy(dtype="int64")]
    obx = (
        "OBX|" + obs["seq"].astype(str) + "|" + obs["value_type"] + "|" + code + "||"
        + _esc(obs["value_text"]) + "|" + obs["unit"] + "|" + obs["reference_range"] + "|"
        + obs["flag"] + "|||" + obs["status"] + "|||" + stamp
    ).to_numpy()  # fmt: skip
    ends = np.searchsorted(obs["report"].to_numpy(dtype="int64"), np.arange(1, len(reports) + 1))
    starts = np.concatenate([[0], ends[:-1]])
    out = []
    for text, a, b, charset in zip(head, starts, ends, reports["charset"], strict=True):
        message = text + "\r" + "\r".join(obx[a:b])
        out.append(message.encode("gb18030" if charset.startswith("GB") else "utf-8"))
    return out


def _headers(r: pd.DataFrame) -> list[str]:
    """MSH, PID, OBR and (labs) SPM of every report, vectorised over the frame."""
    lab = r["kind"] == "lab"
    panel = r["panel"].clip(lower=0).to_numpy()
    exam = r["exam"].clip(lower=0).to_numpy()
    local = np.where(lab, [PANELS[p][0] for p in panel], [EXAMS[e][2] for e in exam])
    loinc = np.where(lab, [PANELS[p][1] for p in panel], [EXAMS[e][3] for e in exam])
    name = np.where(lab, [PANELS[p][2] for p in panel], [EXAMS[e][4] for e in exam])
    section = np.where(lab, np.where(panel == 0, "HM", "CH"), [EXAMS[e][1] for e in exam])
    spm = np.where(lab, "\rSPM|1|||" + pd.Series([PANELS[p][3] for p in panel]), "")
    code = np.where(r["loinc"], loinc + "^" + name + "^LN", local + "^" + name + "^L")
    msh = (
        "MSH|^~\\&|LIS|" + r["credit_code"] + "|RHIP|RHIP|" + _ts(r["issued_at"])
        + "||ORU^R01^ORU_R01|" + r["message_id"] + "|P|2.5.1||||||" + r["charset"]
    )  # fmt: skip
    pid = "PID|1||" + _pid3(r) + "||" + _pid5(r) + "||" + _birth(r) + "|" + _sex(r)
    obr = (
        "OBR|1|O" + r["filler"].str[1:] + "|" + r["filler"] + "|" + code + "|||"
        + _ts(r["collected_at"]) + "|" * 15 + _ts(r["issued_at"]) + "||" + section + "|"
        + r["status"]
    )  # fmt: skip
    return list(msh + "\r" + pid + "\r" + obr + spm)


def _pid3(r: pd.DataFrame) -> pd.Series:
    mr = r["mrn"] + "^^^&" + r["credit_code"] + "&USCI^MR"
    rid = r["resident_id"].fillna("")
    return mr + np.where(rid != "", "~" + rid + "^^^^NNCHN", "")


def _pid5(r: pd.DataFrame) -> pd.Series:
    name = r["name"]
    cjk = name.str.contains("[\u4e00-\u9fff]", regex=True)
    family = [n[:k] if c else n for n, k, c in zip(name, r["surname_len"], cjk, strict=True)]
    given = [n[k:] if c else "" for n, k, c in zip(name, r["surname_len"], cjk, strict=True)]
    return _esc(pd.Series(family, index=r.index)) + "^" + _esc(pd.Series(given, index=r.index))


def _birth(r: pd.DataFrame) -> pd.Series:
    born = pd.to_datetime(r["birth_date"], errors="coerce", format="%Y-%m-%d")
    return born.dt.strftime("%Y%m%d").fillna("")


def _sex(r: pd.DataFrame) -> pd.Series:
    return r["gender"].map({"male": "M", "female": "F"}).fillna("U")


def _ts(values: pd.Series) -> pd.Series:
    """HL7 DTM in China Standard Time, with its offset."""
    return values.dt.tz_convert("Asia/Shanghai").dt.strftime("%Y%m%d%H%M%S+0800")


def _esc(values: pd.Series) -> pd.Series:
    out = values.fillna("").astype(str)
    for char, escaped in _ESCAPES:
        out = out.str.replace(char, escaped, regex=False)
    return out


def to_ndjson(reports: pd.DataFrame, observations: pd.DataFrame) -> Iterator[str]:
    """One FHIR transaction Bundle per report row (a line each, without newline)."""
    obs = observations.sort_values(["report", "seq"], kind="stable")
    rows = list(obs.itertuples(index=False))
    keys = obs["report"].to_numpy()
    for row in reports.itertuples(index=False):
        a, b = np.searchsorted(keys, [row.report, row.report + 1])
        yield json.dumps(_bundle(row, rows[a:b]), ensure_ascii=False)


def _uuid(*parts: object) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NS, "|".join(map(str, parts))))


def _bundle(r, obs: list) -> dict:
    """DiagnosticReport + Observations of one report version, subject by conditional reference."""
    subject = {"reference": f"Patient?identifier={systems.mrn_system(r.credit_code)}|{r.mrn}"}
    status = STATUS[r.status]
    collected = r.collected_at.isoformat()
    lab = r.kind == "lab"
    item = PANELS[r.panel] if lab else EXAMS[r.exam]
    local, loinc, name = (item[0], item[1], item[2]) if lab else (item[2], item[3], item[4])
    section = ("HM" if r.panel == 0 else "CH") if lab else item[1]
    entries, results = [], []
    for o in obs if lab else ():
        url = _uuid(r.message_id, o.seq)
        results.append({"reference": url})
        entries.append(_entry(url, "Observation", _observation(r, o, subject, status, collected)))
    report = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"type": {"coding": [{"code": "FILL"}]}, "value": r.filler}],
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": section}]}],
        "code": {"coding": [_coding(r, loinc, local, name)]},
        "subject": subject,
        "effectiveDateTime": collected,
        "issued": r.issued_at.isoformat(),
        "result": results,
    }  # fmt: skip
    if not lab:
        texts = {o.seq: o.value_text for o in obs}
        findings = base64.b64encode(texts.get(1, "").encode()).decode()
        report["presentedForm"] = [{"contentType": "text/plain; charset=utf-8", "data": findings}]
        report["conclusion"] = texts.get(2, "")
    entries.insert(0, _entry(_uuid(r.message_id), "DiagnosticReport", report))
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"system": f"urn:rhip:bundle:{r.credit_code}", "value": r.message_id},
        "entry": entries,
    }


def _observation(r, o, subject: dict, status: str, collected: str) -> dict:
    low, _, high = o.reference_range.partition("-")
    obs = {
        "resourceType": "Observation",
        "status": status,
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [_coding(r, o.loinc_code, o.local_code, o.display)]},
        "subject": subject,
        "effectiveDateTime": collected,
        "valueQuantity": {"value": float(o.value_num), "unit": o.unit},
        "referenceRange": [{"low": {"value": float(low)}, "high": {"value": float(high)}}],
    }
    if o.flag:
        obs["interpretation"] = [{"coding": [{"code": o.flag}]}]
    return obs


def _coding(r, loinc: str, local: str, display: str) -> dict:
    if r.loinc:
        return {"system": LOINC, "code": loinc, "display": display}
    return {"system": f"{LOCAL}:{r.credit_code}", "code": local, "display": display}


def _entry(url: str, kind: str, resource: dict) -> dict:
    return {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": kind}}


def write_files(
    reports: pd.DataFrame, observations: pd.DataFrame, folder: Path | str, seed: int
) -> dict[str, Path]:
    """``reports-<seed>.hl7`` (MLLP frames, as ``mllp_send -f`` sends them) and, per sending
    institution, ``reports-<seed>/<credit code>.ndjson`` (``rhip ingest --sender`` takes one
    institution a file). Returns the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hl7_path = folder / f"reports-{seed}.hl7"
    with hl7_path.open("wb") as fh:
        for message in to_hl7(reports, observations):
            fh.write(b"\x0b" + message + b"\x1c\r")
    nd_folder = folder / f"reports-{seed}"
    nd_folder.mkdir(exist_ok=True)
    for credit, part in reports.groupby("credit_code", sort=True):
        obs = observations[observations["report"].isin(part["report"])]
        with (nd_folder / f"{credit}.ndjson").open("w", encoding="utf-8") as fh:
            for line in to_ndjson(part, obs):
                fh.write(line + "\n")
    return {"hl7": hl7_path, "ndjson": nd_folder}
