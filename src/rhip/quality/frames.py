"""Messages' reports and observations as plain columns, the input of every rule.

Built once per batch (or per group of batches: a group commit, an NDJSON chunk) from batches
whose ``items`` are (golden patient id, report) pairs, the report having the fields of
``rhip.exchange.oru.ReportIn`` (duck-typed: quality does not import exchange). Columns are
Python lists (a rule is a comprehension over them): on a 12-row message a DataFrame costs more
than every rule together, and on a 14,000-row chunk a list pass is still milliseconds.
``batch`` is the message a row belongs to, ``item`` the report's position in its message,
``seg``/``seq`` the HL7 segment occurrence a row came from (``OBR``/``OBX``), when known.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

REPORT_COLUMNS = (
    "batch", "item", "patient_id", "key", "kind", "code", "code_system", "status",
    "collected_at", "issued_at", "gender", "seg", "seq",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "batch", "item", "obs", "patient_id", "kind", "code", "code_system", "value_type", "num",
    "text", "unit", "reference_range", "observed_at", "gender", "seg", "seq",
)  # fmt: skip


class Columns:
    """Equal-length columns by name: ``cols["unit"][i]`` is row i's unit.

    ``starts[b]`` is the first row of message b (and ``starts[-1]`` the row count) when the
    rows are in message order, as ``Frames.of_many`` builds them; else None. Found from the
    ``batch`` column unless given. ``sizes``: message → its rows, for the messages with any
    (None without ``starts``)."""

    __slots__ = ("batches", "cols", "n", "sizes", "starts")

    def __init__(
        self,
        cols: dict[str, Sequence[Any]],
        n: int,
        batches: int = 1,
        starts: Sequence[int] | None = None,
    ):
        self.cols, self.n, self.batches = cols, n, batches
        if starts is None and "batch" in cols:
            starts = _starts(cols["batch"], batches)
        self.starts = starts
        self.sizes = None
        if starts is not None:
            self.sizes = {b: hi - lo for b, (lo, hi) in enumerate(pairwise(starts)) if hi > lo}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> Sequence[Any]:
        return self.cols[name]

    def __contains__(self, name: str) -> bool:
        return name in self.cols

    def get(self, name: str, default: Any = None) -> Any:
        return self.cols.get(name, default)

    def with_columns(self, more: Mapping[str, Sequence[Any]]) -> Columns:
        starts = None if "batch" in more else self.starts
        return Columns({**self.cols, **more}, self.n, self.batches, starts)


def _starts(batch: Sequence[int], batches: int) -> Sequence[int] | None:
    """``Columns.starts`` from a ``batch`` column."""
    if batch and (batch[0] < 0 or batch[-1] >= batches or list(batch) != sorted(batch)):
        return None  # not in message order: counts per message go row by row
    return tuple(bisect_left(batch, b) for b in range(batches + 1))


@dataclass(frozen=True, slots=True)
class Frames:
    """``reports``: one row per report; ``observations``: one row per observation (``obs`` =
    its position in the report); ``batches``: how many messages the rows come from."""

    reports: Columns
    observations: Columns
    batches: int = 1

    @classmethod
    def of(cls, batch: Any, gender: Mapping[str, str | None] | None = None) -> Frames:
        """The frames of one message."""
        return cls.of_many([batch], [gender or {}])

    @classmethod
    def of_many(
        cls, batches: Sequence[Any], genders: Sequence[Mapping[str, str | None]] | None = None
    ) -> Frames:
        """The frames of several messages at once (rows carry their message in ``batch``)."""
        reports: list[tuple] = []
        observations: list[tuple] = []
        report_starts, observation_starts = [0], [0]  # each message's first row
        for b, batch in enumerate(batches):
            gender = genders[b] if genders is not None else getattr(batch, "gender", {})
            _rows(b, batch, gender or {}, reports, observations)
            report_starts.append(len(reports))
            observation_starts.append(len(observations))
        n = len(batches)
        return cls(
            _columns(reports, REPORT_COLUMNS, n, report_starts),
            _columns(observations, OBSERVATION_COLUMNS, n, observation_starts),
            n,
        )

    def with_standard(self, standard: Any) -> Frames:
        """These frames with terminology's columns (std_code, unit_status, …) joined on;
        ``standard`` is a mapping of column → list (or a DataFrame) in observation order."""
        if hasattr(standard, "to_dict") and hasattr(standard, "columns"):
            standard = {c: standard[c].tolist() for c in standard.columns}
        if not len(self.observations):
            return self
        return type(self)(self.reports, self.observations.with_columns(standard), self.batches)


def _rows(b: int, batch: Any, gender: Mapping, reports: list, observations: list) -> None:
    for item, (patient_id, report) in enumerate(batch.items):
        sex = gender.get(patient_id)
        kind = report.kind
        seg, seq = _where(getattr(report, "obr", None))
        reports.append((
            b, item, patient_id, report.key, kind, report.code, report.code_system,
            report.status, aware(report.collected_at), aware(report.issued_at), sex, seg, seq,
        ))  # fmt: skip
        for pos, o in enumerate(report.observations):
            # _text and _where written out: this runs for every observation of every message
            v, where = o.value, getattr(o, "location", None)
            text, unit, reference_range = v.text, o.unit, o.reference_range
            observations.append((
                b, item, pos, patient_id, kind, o.code, o.code_system, v.type, v.num,
                text if text and text.strip() else None,
                unit if unit and unit.strip() else None,
                reference_range if reference_range and reference_range.strip() else None,
                aware(o.observed_at), sex,
                None if where is None else getattr(where, "segment", None),
                None if where is None else getattr(where, "sequence", None),
            ))  # fmt: skip


def _columns(
    rows: list[tuple], names: tuple[str, ...], batches: int, starts: Sequence[int]
) -> Columns:
    if not rows:
        return Columns({name: () for name in names}, 0, batches, starts)
    cols = dict(zip(names, zip(*rows, strict=True), strict=True))
    return Columns(cols, len(rows), batches, starts)


def _text(value: str | None) -> str | None:
    return value if value and value.strip() else None  # "" and blanks count as missing


def _where(location: Any) -> tuple[str | None, int | None]:
    if location is None:
        return None, None
    return getattr(location, "segment", None), getattr(location, "sequence", None)


def aware(instant: dt.datetime | None) -> dt.datetime | None:
    """A naive time is UTC (as the drivers store it); None stays None."""
    if instant is None or instant.tzinfo is not None:
        return instant
    return instant.replace(tzinfo=dt.UTC)


def utc(instant: dt.datetime) -> dt.datetime:
    return aware(instant).astimezone(dt.UTC)
