"""Columnar mapping of NDJSON lines (批量映射): Bundle lines of the usual shape straight into
column lists, without a ``ReportIn``/``ObservationIn`` per report and result.

The usual shape is what lab systems send a line at a time: a Bundle whose first entry is a lab
DiagnosticReport with a conditional (or ``Patient/<id>``) subject and whose other entries are
exactly its ``result`` Observations, referenced by ``fullUrl`` in order, with no ids, contained
resources or specimens. Every resource still passes ``bulk_check.valid``. Any other line — and
any line where something is off (invalid, an unmapped value, an unknown patient) — goes to
``fallback`` untouched, to the per-line ``fhir_ingest.prepare`` path, which reports its errors
exactly as before. The values are those of ``fhir_map.report_in`` (same helpers, same
truncations); ``tests/exchange/test_bulk_map.py`` compares stored rows of both paths.

Each line is first offered to ``bulk_fast`` (typed msgspec Structs, decoded and checked in C,
~2x less CPU); the dict path here decides on every line it does not take.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rhip.exchange import bulk_check, bulk_fast, fhir_map
from rhip.exchange.fhir_validate import parse_datetime
from rhip.exchange.oru import EXAM_SECTIONS
from rhip.kernel.errors import RhipError

REPORT_FIELDS = (
    "line", "patient_ref", "patient_id", "key", "code_system", "code", "display", "status",
    "placer_number", "filler_number", "collected_at", "issued_at",
)  # fmt: skip
OBSERVATION_FIELDS = (
    "report", "seq", "code_system", "code", "display", "value_type", "num", "comparator",
    "text", "value_code", "unit", "reference_range", "abnormal_flag", "status", "observed_at",
)  # fmt: skip
_OBS_LIMIT = len(OBSERVATION_FIELDS)


class _Unusual(Exception):
    """The line is not of the usual shape, or something in it is off: it takes the old path."""


_NOT_USUAL = (_Unusual, RhipError, ValueError, TypeError, KeyError, AttributeError)
# what sends a line from bulk_fast to the dict path (which decides on it as it always did)
_NOT_FAST = (*bulk_fast.Failed, bulk_fast.Unusual, *_NOT_USUAL)


@dataclass
class Mapped:
    """One chunk: reports (one a line) and observations as columns, and the lines left over.

    ``observations["report"]`` is the row of the observation's report in ``reports``.
    """

    reports: dict[str, list] = field(default_factory=lambda: {f: [] for f in REPORT_FIELDS})
    observations: dict[str, list] = field(
        default_factory=lambda: {f: [] for f in OBSERVATION_FIELDS}
    )
    raw: dict[int, bytes] = field(default_factory=dict)  # line → raw, for the mapped lines
    urls: dict[int, list[str]] = field(default_factory=dict)  # line → its entries' fullUrls
    fallback: list[tuple[int, bytes]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.reports["line"])

    def drop(self, rows: set[int]) -> None:
        """Send report rows (and their observations) to the fallback, in line order."""
        if not rows:
            return
        r, o = self.reports, self.observations
        self.fallback += [(r["line"][k], self.raw.pop(r["line"][k])) for k in sorted(rows)]
        for k in rows:
            self.urls.pop(r["line"][k], None)
        self.fallback.sort(key=lambda item: item[0])
        keep = [k for k in range(len(self)) if k not in rows]
        renumber = {old: new for new, old in enumerate(keep)}
        for name, col in r.items():
            r[name] = [col[k] for k in keep]
        kept_obs = [i for i, rep in enumerate(o["report"]) if rep in renumber]
        for name, col in o.items():
            o[name] = [col[i] for i in kept_obs]
        o["report"] = [renumber[rep] for rep in o["report"]]


def map_chunk(chunk: list[tuple[int, bytes]], loads: Callable[[bytes], Any]) -> Mapped:
    """Lines of the usual shape as columns; every other line in ``fallback`` as it came.

    A line goes through ``bulk_fast`` first and, when that does not take it, through the dict
    path here (``loads``, ``bulk_check.valid``, ``_report``): the same row either way.
    """
    out = Mapped()
    reports: list[tuple] = []  # a row per line, transposed into columns once at the end
    observations: list[tuple] = []
    caches = bulk_fast.Caches()
    for n, raw in chunk:
        row = len(reports)
        try:
            report, mapped, urls = bulk_fast.report(bulk_fast.decode(raw), row, caches)
        except _NOT_FAST:
            try:
                report, results, urls = _report(loads(raw))
                mapped = [_observation(o, row, seq) for seq, o in enumerate(results, start=1)]
            except _NOT_USUAL:
                out.fallback.append((n, raw))
                continue
        reports.append((n, *report))
        observations += mapped
        out.raw[n] = raw
        out.urls[n] = urls
    if reports:
        out.reports = _columns(reports, REPORT_FIELDS)
        out.observations = _columns(observations, OBSERVATION_FIELDS)
    return out


def _columns(rows: list[tuple], names: tuple[str, ...]) -> dict[str, list]:
    if not rows:
        return {name: [] for name in names}
    return {name: list(col) for name, col in zip(names, zip(*rows, strict=True), strict=True)}


def _report(data: Any) -> tuple[tuple, list[dict[str, Any]], list[str]]:
    """(report fields but the line, result Observations, fullUrls) of a usual Bundle line."""
    if type(data) is not dict or data.get("resourceType") != "Bundle":
        raise _Unusual
    entries = data.get("entry")
    if type(entries) is not list or not entries:
        raise _Unusual
    resources, urls = [], []
    for item in entries:
        resource = item.get("resource") if type(item) is dict else None
        url = item.get("fullUrl") if resource is not None else None
        if type(url) is not str or not bulk_check.valid(resource):
            raise _Unusual
        if "id" in resource or "contained" in resource or "specimen" in resource:
            raise _Unusual
        urls.append(url)
        resources.append(resource)
    if len(set(urls)) != len(urls):
        raise _Unusual
    dr, results = resources[0], resources[1:]
    if dr["resourceType"] != "DiagnosticReport" or "imagingStudy" in dr:
        raise _Unusual
    refs = [(r or {}).get("reference") for r in dr.get("result") or []]
    if refs != urls[1:]:
        raise _Unusual  # every other entry is a result, in order, and nothing else
    if any(r["resourceType"] != "Observation" for r in results):
        raise _Unusual
    subject = ((dr.get("subject") or {}).get("reference") or "").strip()
    tail = "/".join(subject.split("/")[-2:])
    if not subject.startswith("Patient") or subject in urls or ("/" in subject and tail in urls):
        raise _Unusual  # a Patient entry of the line, or not a patient: the old path says why
    system, code, display = fhir_map.coding(dr.get("code"))
    section = fhir_map._section(dr)
    status = fhir_map.REPORT_STATUS.get(dr["status"])
    if not code or section.upper() in EXAM_SECTIONS or status is None:
        raise _Unusual  # an exam's narrative results, or an error to report
    placer, filler = fhir_map._numbers(dr, "")
    collected = fhir_map._effective(dr, "")
    issued = parse_datetime(dr.get("issued"), "") or collected
    key = f"filler:{filler}" if filler else f"placer:{placer}"
    fields = (subject, None, key, (system or None) and system[:200], code[:64], display[:300],
              status, placer, filler, collected, issued)  # fmt: skip
    return fields, results, urls


def _observation(obs: dict[str, Any], report: int, seq: int) -> tuple:
    """One result's fields, as ``fhir_map.observation_in`` maps them (lab: not an exam)."""
    system, code, display = fhir_map.coding(obs.get("code"))
    if not code:
        raise _Unusual
    q = obs.get("valueQuantity")
    if q is not None:
        value = q.get("value")
        if value is None:
            raise _Unusual
        comparator = q.get("comparator")
        vtype, num, text, vcode = "SN" if comparator else "NM", float(value), str(value), None
        unit = q.get("unit") or q.get("code")
    else:
        v, unit = fhir_map._value(obs, "", False)
        vtype, num, comparator, text, vcode = v.type, v.num, v.comparator, v.text, v.code
    flag = ""
    for concept in obs.get("interpretation") or ():
        flag = fhir_map.coding(concept)[1] or ""
        if flag:
            break
    return (
        report, seq, (system or None) and system[:200], code[:64], display[:300], vtype, num,
        comparator, text, vcode, (unit or None) and unit[:64],
        fhir_map._range(obs.get("referenceRange") or []), flag.upper()[:8] or None,
        fhir_map.OBS_STATUS.get(obs["status"]), fhir_map._effective(obs, ""),
    )  # fmt: skip
