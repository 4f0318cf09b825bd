"""The check functions rules name (``rules.yaml`` ``check:``), each one pass over plain columns.

A check takes the ``Frames`` of one or many messages, the ``QualityContext`` and its rule's
parameters, and returns ``Hits``: how many subjects (reports or observations) of each message it
looked at and one row per failure, with the HL7 field (``OBX-6``) and the FHIR element path of
the failing value. Texts are built only for failures.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rhip.kernel.clock import CST
from rhip.quality.frames import Columns, Frames, utc

# one failure: (batch, item, obs, seg, seq, field, path, message); obs -1 for a report
Fail = tuple[int, int, int, "str | None", "int | None", int, str, str]
# column → (segment, field, FHIR element path, what it is)
FIELDS: dict[str, tuple[str, int, str, str]] = {
    "collected_at": ("OBR", 7, "DiagnosticReport.effectiveDateTime", "collection time"),
    "issued_at": ("OBR", 22, "DiagnosticReport.issued", "issue time"),
    "report_key": ("OBR", 3, "DiagnosticReport.identifier", "report number"),
    "patient_id": ("PID", 3, "DiagnosticReport.subject", "patient"),
    "report_code": ("OBR", 4, "DiagnosticReport.code", "report code"),
    "code": ("OBX", 3, "Observation.code", "item code"),
    "value": ("OBX", 5, "Observation.value[x]", "value"),
    "unit": ("OBX", 6, "Observation.valueQuantity.unit", "unit"),
    "reference_range": ("OBX", 7, "Observation.referenceRange", "reference range"),
    "observed_at": ("OBX", 14, "Observation.effectiveDateTime", "observation time"),
    "gender": ("PID", 8, "Patient.gender", "sex"),
}


def at(column: str, v2: bool) -> str:
    """How a message names ``column``'s field: ``OBX-6`` when the message is HL7 v2, else its
    FHIR element path (``Observation.valueQuantity.unit``): what the sender wrote."""
    seg, fno, path, _ = FIELDS[column]
    return f"{seg}-{fno}" if v2 else path


@dataclass(frozen=True, slots=True)
class QualityContext:
    """What rules may use besides the message: who sent it, when it arrived, when is now."""

    institution_id: str
    recorded_at: dt.datetime  # receipt time: day of the scorecard, base of timeliness
    now: dt.datetime | None = None  # for "not in the future"; defaults to recorded_at
    gender: Mapping[str, str | None] = field(default_factory=dict)  # patient id → FHIR gender


@dataclass(frozen=True, slots=True)
class Hits:
    checked: Mapping[int, int]  # batch → subjects looked at
    failed: list[Fail]


Check = Callable[..., Hits]
CHECKS: dict[str, Check] = {}
Rows = Sequence[int]  # positions of rows in a Columns, ascending, each once


def check(fn: Check) -> Check:
    CHECKS[fn.__name__] = fn
    return fn


def hits(
    frame: Columns,
    subjects: Rows,
    bad: Rows,
    column: str,
    message: str | Callable[[int, bool], str],
) -> Hits:
    """Hits for rows ``bad`` (positions in ``frame``) of the ``subjects`` looked at, at
    ``column``'s field; ``message`` is text or a function of a failing row and whether the row
    came from HL7 v2 (to name fields as the sender knows them: see ``at``)."""
    return Hits(per_batch(frame, subjects), _failures(frame, bad, column, message) if bad else [])


def _failures(frame: Columns, bad: Rows, column: str, message) -> list[Fail]:
    seg, fno, path, _ = FIELDS[column]
    batch, segs, seqs = frame["batch"], frame["seg"], frame["seq"]
    item, obs = frame["item"], frame.get("obs")
    failed = []
    for i in bad:
        here = segs[i] == seg  # the row's own segment is where the field is (else no location)
        text = message(i, segs[i] is not None) if callable(message) else message
        failed.append((
            batch[i], item[i], obs[i] if obs is not None else -1, segs[i] if here else None,
            seqs[i] if here else None, fno, path, text,
        ))  # fmt: skip
    return failed


def per_batch(frame: Columns, rows: Rows) -> Mapping[int, int]:
    """How many of ``rows`` each message has; messages with none are left out."""
    if frame.batches == 1:
        return {0: len(rows)}
    if len(rows) == frame.n:  # every row
        return Counter(frame["batch"]) if frame.sizes is None else dict(frame.sizes)
    if frame.starts is None:  # rows not in message order: count them one by one
        batch = frame["batch"]
        return Counter([batch[i] for i in rows])
    counts: dict[int, int] = {}
    lo = 0
    for b, end in enumerate(frame.starts[1:]):  # message b's rows are below end
        hi = bisect_left(rows, end, lo)  # rows ascending: a binary search, not a count
        if hi > lo:
            counts[b] = hi - lo
        lo = hi
    return counts


def na(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


# ``na`` written out in the two below: a call per row would cost more than the test itself
def _missing(values: Sequence[Any], rows: Rows) -> list[int]:
    """The rows of ``rows`` whose value is missing (``na``)."""
    return [i for i in rows if (v := values[i]) is None or (isinstance(v, float) and v != v)]


def _present(values: Sequence[Any], rows: Rows) -> list[int]:
    """The rows of ``rows`` whose value is not missing."""
    return [
        i for i in rows if (v := values[i]) is not None and not (isinstance(v, float) and v != v)
    ]


def _subject(frames: Frames, column: str) -> Columns:
    return frames.reports if FIELDS[column][0] in ("OBR", "PID") else frames.observations


def _only(frame: Columns, kinds=None, value_types=None) -> Rows:
    """The rows of one of ``kinds`` and one of ``value_types`` (either None: any)."""
    rows: Rows = range(len(frame))
    for name, wanted in (("kind", kinds), ("value_type", value_types)):
        if wanted and name in frame:
            values, allowed = frame[name], set(wanted)
            if not allowed.issuperset(values):  # else every row is one of them (found in C)
                rows = [i for i in rows if values[i] in allowed]
    return rows


# -- completeness ------------------------------------------------------------------------------
@check
def required(frames: Frames, ctx: QualityContext, column: str, kinds=None, value_types=None):
    """The field is present (完整性)."""
    frame = _subject(frames, column)
    rows = _only(frame, kinds, value_types)
    what = FIELDS[column][3]
    bad = _missing(frame[column], rows)
    return hits(frame, rows, bad, column, lambda i, v2: f"{at(column, v2)} {what} is missing")


@check
def unit_present(frames: Frames, ctx: QualityContext, value_types=("NM", "SN")):
    """A numeric result carries its unit."""
    obs = frames.observations
    num, unit, code = obs["num"], obs["unit"], obs["code"]
    rows = _present(num, _only(obs, value_types=value_types))
    bad = [i for i in rows if unit[i] is None]
    return hits(
        obs, rows, bad, "unit",
        lambda i, v2: f"{at('unit', v2)} unit is missing for numeric item {code[i]}",
    )  # fmt: skip


# -- validity ------------------------------------------------------------------------------------
@check
def numeric_value(frames: Frames, ctx: QualityContext, value_types=("NM",)):
    """An NM value is a number (HL7 NM: sign, digits, decimal point)."""
    obs = frames.observations
    num, text, vtype = obs["num"], obs["text"], obs["value_type"]
    rows = _only(obs, value_types=value_types)
    bad = [i for i in _missing(num, rows) if text[i] is not None]
    return hits(
        obs, rows, bad, "value",
        lambda i, v2: f"{at('value', v2)} value {str(text[i])[:40]!r} is not a number, as value "
        f"type {vtype[i]} requires",
    )  # fmt: skip


@check
def code_mapped(frames: Frames, ctx: QualityContext, kinds=None, value_types=None):
    """The item code maps to a standard code (LOINC or the national recognition list)."""
    obs = frames.observations
    if "mapped" not in obs:
        return Hits({}, [])
    rows = _only(obs, kinds, value_types)
    mapped, code = obs["mapped"], obs["code"]
    bad = [] if all(mapped) else [i for i in rows if not mapped[i]]  # all: found in C
    return hits(
        obs, rows, bad, "code",
        lambda i, v2: f"{at('code', v2)} item code {str(code[i])!r} is not in the institution's "
        "code map nor a LOINC code",
    )  # fmt: skip


@check
def unit_status(frames: Frames, ctx: QualityContext, status: str = "unknown"):
    """The unit is UCUM (``unknown``) and converts to the item's standard unit
    (``incompatible``)."""
    obs = frames.observations
    if "unit_status" not in obs:
        return Hits({}, [])
    unit, found = obs["unit"], obs["unit_status"]
    rows = [i for i in range(len(obs)) if unit[i] is not None]
    bad = [i for i in rows if found[i] == status] if status in found else []  # in: in C

    def message(i: int, v2: bool) -> str:
        text = f"{at('unit', v2)} unit {str(unit[i])!r}"
        if status == "unknown":
            return text + " is not a UCUM unit"
        return (f"{text} of item {obs['code'][i]} cannot be converted to its standard unit "
                f"{obs['std_unit'][i]}")  # fmt: skip

    return hits(obs, rows, bad, "unit", message)


@check
def not_future(frames: Frames, ctx: QualityContext, column: str, tolerance_minutes: float = 10):
    """A time is not later than now (clock skew of ``tolerance_minutes`` allowed)."""
    frame = _subject(frames, column)
    limit = utc(ctx.now or ctx.recorded_at) + dt.timedelta(minutes=tolerance_minutes)
    what = FIELDS[column][3]
    times = frame[column]
    bad = [i for i in range(len(frame)) if times[i] is not None and times[i] > limit]

    def message(i: int, v2: bool) -> str:
        stamp = times[i].astimezone(CST).strftime("%Y-%m-%d %H:%M")
        return f"{at(column, v2)} {what} {stamp} (CST) is in the future"

    return hits(frame, range(len(frame)), bad, column, message)


@check
def patient_id(frames: Frames, ctx: QualityContext):
    """Every report has its golden patient (主索引)."""
    reports = frames.reports
    ids = reports["patient_id"]
    bad = _missing(ids, range(len(reports)))
    return hits(reports, range(len(reports)), bad, "patient_id",
                "the report has no golden patient id")  # fmt: skip


# -- consistency ---------------------------------------------------------------------------------
@check
def sex_specific(frames: Frames, ctx: QualityContext, female_only=(), male_only=()):
    """A sex-specific test fits the patient's sex (a pregnancy test for a man does not)."""
    obs, reports = frames.observations, frames.reports
    women, men = set(female_only), set(male_only)
    specific = women | men
    checked: dict[int, int] = {}
    failed: list[Fail] = []
    for frame, column in ((obs, "code"), (reports, "report_code")):
        for b, n in per_batch(frame, range(len(frame))).items():
            checked[b] = checked.get(b, 0) + n
        code = frame["code"]
        std = obs.get("std_code") if frame is obs else None
        if specific.isdisjoint(code) and (std is None or specific.isdisjoint(std)):
            continue  # no sex-specific test at all (most messages): nothing can fail
        if std is not None:  # an observation's standard code where it has one
            code = [code[i] if na(s) else s for i, s in enumerate(std)]
        sex = frame["gender"]
        bad = [
            i for i in range(len(frame))
            if (sex[i] == "male" and code[i] in women) or (sex[i] == "female" and code[i] in men)
        ]  # fmt: skip

        def message(i: int, v2: bool, code=code, sex=sex, column=column) -> str:
            who = "women" if code[i] in women else "men"
            return (f"{at(column, v2)} test {code[i]} is for {who} but the patient "
                    f"({at('gender', v2)}) is {sex[i]}")  # fmt: skip

        if bad:
            failed += _failures(frame, bad, column, message)
    return Hits(checked, failed)


@check
def issued_after_collected(frames: Frames, ctx: QualityContext, tolerance_minutes: float = 0):
    """A report is issued after its specimen was collected."""
    r = frames.reports
    issued, collected = r["issued_at"], r["collected_at"]
    slack = dt.timedelta(minutes=tolerance_minutes)
    bad = [
        i for i in range(len(r))
        if issued[i] is not None and collected[i] is not None and issued[i] < collected[i] - slack
    ]  # fmt: skip
    return hits(r, range(len(r)), bad, "issued_at",
                lambda i, v2: f"{at('issued_at', v2)} issue time is before "
                f"{at('collected_at', v2)} collection time")  # fmt: skip


# -- timeliness, uniqueness, silence -------------------------------------------------------------
@check
def upload_delay(frames: Frames, ctx: QualityContext, max_hours: float = 24):
    """A report reaches the platform within ``max_hours`` of being issued (及时性)."""
    r = frames.reports
    received, issued = utc(ctx.recorded_at), r["issued_at"]
    limit = dt.timedelta(hours=max_hours)
    bad = [i for i in range(len(r)) if issued[i] is not None and received - issued[i] > limit]

    def message(i: int, v2: bool) -> str:
        hours = round((received - issued[i]).total_seconds() / 3600, 1)
        return f"uploaded {hours} h after {at('issued_at', v2)} issue time (limit {max_hours:g} h)"

    return hits(r, range(len(r)), bad, "issued_at", message)


def _repeats(keys: Sequence[Any]) -> list[int]:
    """Rows whose key appeared on an earlier row (the first one is not a repeat)."""
    if len(set(keys)) == len(keys):  # the usual case, found in C
        return []
    seen: set = set()
    out = []
    for i, key in enumerate(keys):
        if key in seen:
            out.append(i)
        else:
            seen.add(key)
    return out


@check
def unique_observation_code(frames: Frames, ctx: QualityContext):
    """An item code appears once in a report."""
    obs = frames.observations
    code = obs["code"]
    bad = _repeats(list(zip(obs["batch"], obs["item"], code, strict=True)))
    return hits(
        obs, range(len(obs)), bad, "code",
        lambda i, v2: f"{at('code', v2)} item code {code[i]} repeats in the same report",
    )  # fmt: skip


@check
def unique_report(frames: Frames, ctx: QualityContext):
    """A report (same number, status and issue time) appears once in a message."""
    r = frames.reports
    key = r["key"]
    bad = _repeats(list(zip(r["batch"], key, r["status"], r["issued_at"], strict=True)))
    return hits(
        r, range(len(r)), bad, "report_key",
        lambda i, v2: f"{at('report_key', v2)} report {key[i]} repeats in the same message",
    )  # fmt: skip


@check
def feed_silence(frames: Frames, ctx: QualityContext, **_params: Any):
    """Silence is about feeds, not messages: see ``rhip.quality.silence``; nothing per message."""
    return Hits({}, [])
