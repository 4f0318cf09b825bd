"""Quality control at ingest (入库质控): run the rules over one message, reject or record.

``check(frames, ctx)`` runs every enabled rule and returns ``Findings``; the caller raises
``findings.rejection()`` when there are errors (nothing is written, the sender gets ACK AE or
HTTP 422 naming the rule and field) and otherwise calls ``record`` in the same transaction as the
reports, which stores the warnings and adds the message's counts to the daily scorecard.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from rhip.kernel.clock import CST
from rhip.kernel.errors import InvalidInput
from rhip.quality import repo
from rhip.quality.checks import CHECKS, Fail, QualityContext
from rhip.quality.frames import Frames
from rhip.quality.rules import Rule, default_rules


@dataclass(frozen=True, slots=True)
class Finding:
    """One failure of one rule: where (HL7 segment occurrence and field, FHIR path) and why."""

    rule_id: str
    dimension: str
    severity: str
    hl7_code: str  # HL7 table 0357, for ERR-3 when it rejects
    item: int  # the report's position in the batch
    obs: int | None  # the observation's position in the report, None for the report itself
    segment: str | None  # OBR / OBX / PID when the message is HL7 v2, else None
    sequence: int | None
    field_no: int
    path: str  # FHIR element path of the same value
    message: str

    @property
    def field(self) -> str:
        """``OBX[2].6`` on HL7 v2 (the ERR location as a path), else the FHIR element path."""
        if self.segment:
            return f"{self.segment}[{self.sequence}].{self.field_no}"
        return self.path


@dataclass(slots=True)
class RuleCount:
    checked: int = 0
    passed: int = 0
    warnings: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Findings:
    items: tuple[Finding, ...] = ()
    counts: dict[str, RuleCount] = field(default_factory=dict)  # rule id → counts

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "warning"]

    def rejection(self) -> QualityRejected | None:
        return QualityRejected(self.errors) if self.errors else None


class QualityRejected(InvalidInput):
    """Error rules failed (质控不通过): the message is rejected with every failing rule named.

    ``expression`` is the first failure's field; ``hl7_code`` and ``location`` (segment,
    occurrence, field) let the HL7 v2 path build the ACK's ERR segment.
    """

    def __init__(self, errors: Sequence[Finding]):
        shown = "; ".join(f"[{f.rule_id}] {f.message}" for f in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        first = errors[0]
        text = f"{repo.REJECTED_PREFIX} {shown}{more}"
        super().__init__(text, expression=first.field)
        self.findings = list(errors)
        self.hl7_code = first.hl7_code
        self.location = (first.segment, first.sequence, first.field_no) if first.segment else None


def check(frames: Frames, ctx: QualityContext, rules: Sequence[Rule] | None = None) -> Findings:
    """Every enabled rule over one message's frames: the findings and per-rule counts."""
    found = check_many(frames, ctx, rules)
    return found[0] if found else Findings()


def check_many(
    frames: Frames, ctx: QualityContext, rules: Sequence[Rule] | None = None
) -> list[Findings]:
    """Every enabled rule over the frames of ``frames.batches`` messages at once (one pass per
    rule for all of them): each message's findings and per-rule counts, in message order."""
    n = frames.batches
    found: list[list[Finding]] = [[] for _ in range(n)]
    counts: list[dict[str, RuleCount]] = [{} for _ in range(n)]
    for rule in rules if rules is not None else default_rules():
        if not rule.enabled:
            continue
        hits = CHECKS[rule.check](frames, ctx, **rule.params)
        failing = _failing(rule, hits.failed, found) if hits.failed else {}
        rule_id, checked = rule.id, hits.checked
        for b, mine in enumerate(counts):  # most messages pass every rule: a lookup each
            c = checked.get(b, 0)
            mine[rule_id] = _count(rule, c, failing[b]) if b in failing else RuleCount(c, c)
    return [Findings(tuple(f), c) for f, c in zip(found, counts, strict=True)]


def _failing(
    rule: Rule, failed: list[Fail], found: list[list[Finding]]
) -> dict[int, tuple[int, int]]:
    """Each failure as a finding of its message; per failing message, (failures, subjects
    failed: a report or an observation failing twice counts once)."""
    failures: dict[int, int] = {}
    subjects: dict[int, set] = {}
    for row in failed:
        b = row[0]
        found[b].append(_finding(rule, row))
        failures[b] = failures.get(b, 0) + 1
        subjects.setdefault(b, set()).add((row[1], row[2]))
    return {b: (f, len(subjects[b])) for b, f in failures.items()}


def _count(rule: Rule, checked: int, failing: tuple[int, int]) -> RuleCount:
    failures, subjects = failing
    passed = max(checked - subjects, 0)
    if rule.severity == "error":
        return RuleCount(checked, passed, errors=failures)
    return RuleCount(checked, passed, warnings=failures)


def _finding(rule: Rule, row: Fail) -> Finding:
    _, item, obs, seg, seq, field_no, path, message = row
    here = seg is not None and seq is not None  # an HL7 segment occurrence is known
    return Finding(
        rule.id, rule.dimension, rule.severity, rule.hl7_code, int(item),
        None if obs is None or obs < 0 else int(obs), seg if here else None,
        int(seq) if here else None, int(field_no), path, str(message),
    )  # fmt: skip


def record(
    conn: Connection, ctx: QualityContext, findings: Findings, report_ids: Sequence[str]
) -> None:
    """Store the warnings (with the id of the report version each was found in) and add the
    message's counts to the institution's scorecard for the day, in the caller's transaction.
    """
    day = ctx.recorded_at.astimezone(CST).date()
    rows = [
        (ctx.institution_id, report_ids[f.item] if f.item < len(report_ids) else None,
         f.rule_id, f.severity, f.field[:100], f.message, day, ctx.recorded_at)
        for f in findings.warnings
    ]  # fmt: skip
    repo.insert_findings(conn, rows)
    repo.add_daily(conn, ctx.institution_id, day, findings.counts)


def record_many(
    conn: Connection,
    recorded_at: dt.datetime,
    messages: Sequence[tuple[str, Findings, Sequence[str]]],
    tally: ScorecardTally | None = None,
) -> None:
    """``record`` for many messages (institution id, findings, report ids) at once: one insert
    of all warnings and one scorecard upsert with the counts summed per institution and rule.
    With ``tally`` the counts go to it instead, to be flushed outside the caller's transaction.
    """
    write_recording(conn, recording(recorded_at, messages), tally)


@dataclass(frozen=True, slots=True)
class Recording:
    """What ``record_many`` writes: the warnings' rows and the day's counts per institution."""

    warnings: list[tuple]  # quality_findings rows, FINDING_COLUMNS order
    day: dt.date
    counts: list[tuple[str, dict[str, RuleCount]]]  # (institution, rule → count) per message


def recording(
    recorded_at: dt.datetime, messages: Sequence[tuple[str, Findings, Sequence[str]]]
) -> Recording:
    """The rows and counts of ``record_many``, built without writing them."""
    day = recorded_at.astimezone(CST).date()
    rows = [
        (iid, ids[f.item] if f.item < len(ids) else None, f.rule_id, f.severity,
         f.field[:100], f.message, day, recorded_at)
        for iid, findings, ids in messages
        for f in findings.items
        if f.severity == "warning"
    ]  # fmt: skip
    return Recording(rows, day, [(iid, f.counts) for iid, f, _ in messages])


def write_recording(
    conn: Connection, rec: Recording, tally: ScorecardTally | None = None, *, warnings=True
) -> None:
    """Write ``rec`` in the caller's transaction (``warnings`` False: the caller writes the
    warning rows itself); the counts go to ``tally`` when one is given."""
    if warnings:
        repo.insert_findings(conn, rec.warnings)
    if tally is not None:
        tally.add(rec.day, rec.counts)
        return
    totals: dict[str, dict[str, RuleCount]] = {}
    _add_counts(totals, rec.counts)
    repo.add_daily_many(conn, rec.day, totals)


def _add_counts(totals: dict[str, dict[str, RuleCount]], counts) -> None:
    for iid, by_rule in counts:
        mine = totals.setdefault(iid, {})
        for rule_id, c in by_rule.items():
            t = mine.setdefault(rule_id, RuleCount())
            t.checked, t.passed = t.checked + c.checked, t.passed + c.passed
            t.warnings, t.errors = t.warnings + c.warnings, t.errors + c.errors


class ScorecardTally:
    """Scorecard counts (质控日报) summed in memory and written at most every ``every`` seconds,
    in a transaction of their own: the message transactions of a busy listener then neither pay
    the upsert nor queue on the same ``quality_daily`` rows.

    The price is a bounded loss window for *statistics only*: a process killed between flushes
    loses up to ``every`` seconds of counts (the messages, reports and warnings are committed
    with their messages and are never lost). ``flush`` on shutdown writes what is left.
    """

    def __init__(self, every: float = 1.0):
        self.every = every
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[dt.date, dict[str, dict[str, RuleCount]]] = {}
        self._last = time.monotonic()

    def add(self, day: dt.date, counts: Sequence[tuple[str, dict[str, RuleCount]]]) -> None:
        """Add (institution, rule → count) pairs, one per message, to the day's pending sums."""
        with self._lock:
            _add_counts(self._pending.setdefault(day, {}), counts)

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last >= self.every

    def flush(self, engine: Engine) -> None:
        """Write the pending counts (one upsert per day, one transaction); on failure they are
        kept for the next flush."""
        if not self._flush_lock.acquire(blocking=False):
            return  # another thread is flushing
        try:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._last = time.monotonic()
            if not pending:
                return
            try:
                with engine.begin() as conn:
                    for day, totals in sorted(pending.items()):
                        repo.add_daily_many(conn, day, totals)
            except Exception:
                with self._lock:  # keep them: added back for the next flush
                    for day, totals in pending.items():
                        _add_counts(self._pending.setdefault(day, {}), totals.items())
                raise
        finally:
            self._flush_lock.release()
