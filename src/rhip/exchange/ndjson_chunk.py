"""One NDJSON chunk (批量导入的一块) through its two stages, for ``rhip.exchange.ndjson``.

Stage A (``prepare``) parses, maps, resolves and checks the chunk's lines with no write lock
held; stage B (``write``) stores it in one transaction — its raw inbox row, its reports with
versions and current flags against what is stored, a failed message per bad line — or keeps it
as a duplicate or as failed. ``ndjson`` runs stage B of a chunk while stage A of the next runs.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

try:  # orjson parses these lines ~4x faster than the standard library; optional
    import orjson

    _loads, _JSONError = orjson.loads, (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - orjson missing

    def _loads(text: bytes):
        return json.loads(text.decode("utf-8"))

    _JSONError = (UnicodeDecodeError, json.JSONDecodeError)

from rhip.exchange import bulk_check, bulk_map, bulk_store, fhir_ingest, fhir_map, inbox
from rhip.exchange.fhir_bundle import FhirIngest
from rhip.exchange.fhir_ingest import Channel, Entry, Plan
from rhip.exchange.fhir_validate import FhirMalformed
from rhip.exchange.inbox import Arrival
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.errors import RhipError

CHANNEL = "ndjson"


@dataclass(frozen=True, slots=True)
class LineError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# -- stage A: a chunk parsed, mapped, resolved and checked ---------------------------------------
@dataclass
class Chunk:
    """What stage A made of a chunk, for stage B to store."""

    lines: list[tuple[int, bytes]]
    name: str
    sender: Sender
    arrival: Arrival
    key: str
    taken: bool = False
    failure: Exception | None = None
    recorded: dt.datetime | None = None
    mapped: bulk_map.Mapped | None = None
    checked: tuple | None = None
    entries: list[Entry] = field(default_factory=list)
    plan: Plan | None = None


def read(lines: list[tuple[int, bytes]], name: str, sender: Sender) -> Chunk:
    """The chunk as the inbox will keep it: raw bytes, control id ``file#first-last``, and its
    idempotency key (sender + SHA-256 of the bytes)."""
    raw = b"".join(line for _, line in lines)
    first, last = lines[0][0], lines[-1][0]
    arrival = Arrival(
        raw, CHANNEL, sender=sender.credit_code, control_id=f"{name}#{first}-{last}"[-200:],
        message_type="ndjson", received_at=now(),
    )  # fmt: skip
    key = inbox.dedup_key(CHANNEL, sender.credit_code, hashlib.sha256(raw).hexdigest())
    return Chunk(lines, name, sender, arrival, key)


def prepare(ingest: FhirIngest, channel: Channel, chunk: Chunk, validate) -> None:
    """Stage A: a taken key marks a duplicate; otherwise the lines mapped, resolved, checked
    and planned. A failure is kept on the chunk for stage B to record in its turn."""
    with ingest.engine.connect() as conn:
        chunk.taken = bool(inbox.taken_keys(conn, [chunk.key]))
    if chunk.taken:
        return
    try:
        chunk.recorded = now()
        chunk.mapped, chunk.checked, chunk.entries = _columns(
            ingest, channel, chunk.sender, chunk.lines, validate, chunk.recorded
        )
        chunk.plan = fhir_ingest.prepare(channel, chunk.entries, atomic=False, validate=validate)
    except Exception as exc:  # the chunk as a whole cannot be applied: see ``_failed``
        chunk.failure = exc


# -- stage B: a chunk's transaction --------------------------------------------------------------
@dataclass
class Outcome:
    """What stage B stored of a chunk."""

    reports: int = 0
    patients: int = 0
    duplicate: bool = False
    errors: list[LineError] = field(default_factory=list)


def write(ingest: FhirIngest, chunk: Chunk) -> Outcome:
    """Stage B, in the writer thread: the chunk applied, or kept as a duplicate or as failed."""
    if chunk.taken:
        return _duplicate(ingest, chunk)
    if chunk.failure is not None:
        return _failed(ingest, chunk, chunk.failure)
    try:
        return _apply(ingest, chunk)
    except _Taken:  # imported by another import meanwhile: recorded, not applied
        return _duplicate(ingest, chunk)
    except Exception as exc:  # the chunk as a whole could not be stored: kept, to re-process
        return _failed(ingest, chunk, exc)


def _apply(ingest: FhirIngest, chunk: Chunk) -> Outcome:
    """One transaction: the chunk's inbox row, its reports (versions and current flags against
    what is stored, so after every earlier chunk), and a failed message per bad line."""
    out = Outcome()
    sender, mapped, name = chunk.sender, chunk.mapped, chunk.name
    with ingest.lock, ingest.engine.begin() as conn:
        message_id = _store_chunk(conn, chunk.arrival, chunk.key, sender.institution_id)
        out.reports += fhir_ingest.write(conn, chunk.plan, sender.institution_id, message_id)
        if len(mapped):
            out.reports += bulk_store.write(conn, mapped, chunk.checked, sender.institution_id,
                                            message_id, chunk.recorded)  # fmt: skip
        bad = _bad_lines(chunk.entries, chunk.lines, name)
        for err, line_raw in bad:
            failed = Arrival(line_raw, CHANNEL, sender=sender.credit_code,
                             control_id=f"{name}:{err.line}"[-200:], message_type="ndjson-line",
                             received_at=now())  # fmt: skip
            inbox.store_failed(conn, failed, str(err), None, "4x", sender.institution_id)
        if bad:
            inbox.mark(conn, message_id, "processed", ack_code="2x",
                       error=f"{len(bad)} of {len(chunk.lines)} lines failed",
                       institution_id=sender.institution_id)  # fmt: skip
    out.errors += [err for err, _ in bad]
    out.patients += sum(1 for e in chunk.entries if (e.location or "").startswith("Patient/"))
    return out


def _duplicate(ingest: FhirIngest, chunk: Chunk) -> Outcome:
    with ingest.lock, ingest.engine.begin() as conn:
        inbox.store_duplicate(conn, chunk.arrival, inbox.by_key(conn, chunk.key))
    return Outcome(duplicate=True)


def _failed(ingest: FhirIngest, chunk: Chunk, exc: Exception) -> Outcome:
    """The chunk kept in the inbox as failed (unless its key is taken), its lines named."""
    message = exc.message if isinstance(exc, RhipError) else exc.__class__.__name__
    message_id = ingest.admit(chunk.arrival, chunk.key)
    if message_id is not None:
        with ingest.lock, ingest.engine.begin() as conn:
            inbox.mark(conn, message_id, "failed", count_attempt=True, ack_code="5x",
                       error=f"chunk not applied: {message}")  # fmt: skip
    first, last = chunk.lines[0][0], chunk.lines[-1][0]
    return Outcome(errors=[LineError(chunk.name, first, f"lines {first}-{last} not applied: "
                                                         f"{message}")])  # fmt: skip


class _Taken(Exception):
    """The chunk's idempotency key is stored already: the chunk is a duplicate."""


def _store_chunk(conn: Connection, arrival: Arrival, key: str, institution_id: str) -> int:
    """The chunk's inbox row, written once with its outcome (``inbox.store_processed``) as the
    first statement of the transaction that applies it, so nothing else is lost when it fails.
    Lines that fail are noted by ``inbox.mark`` after; a taken key raises ``_Taken``."""
    try:
        return inbox.store_processed(conn, arrival, key, institution_id, ack_code="2x")
    except IntegrityError:
        raise _Taken from None


def _columns(ingest: FhirIngest, channel: Channel, sender: Sender, chunk, validate, recorded):
    """The chunk's usual lines mapped, resolved and checked as columns (``bulk_map``,
    ``bulk_store``), and the entries of every other line for ``fhir_ingest.prepare``.

    A report key that a fallback line may also write keeps all its lines on the per-line path,
    so versions apply in line order as before.
    """
    if validate is not bulk_check.check:  # "full" validation: the R4B models, line by line
        return bulk_map.Mapped(fallback=list(chunk)), None, parse_chunk(chunk)
    mapped = bulk_map.map_chunk(chunk, _loads)
    entries = parse_chunk(mapped.fallback)
    parsed = len(mapped.fallback)
    if len(mapped):
        mapped.drop(_entangled(mapped, entries))
    checked = None
    if len(mapped):
        bulk_store.resolve(channel, mapped)
    if len(mapped):
        with ingest.engine.connect() as conn:
            checked = bulk_store.check(conn, sender.institution_id, mapped, recorded)
    if len(mapped.fallback) != parsed:  # lines sent back by the steps above
        entries = parse_chunk(mapped.fallback)
    return mapped, checked, entries


_REFERENCE = re.compile(rb'"reference"\s*:\s*"([^"]*)"')


def _entangled(mapped: bulk_map.Mapped, entries: list[Entry]) -> set[int]:
    """Mapped lines the per-line path would tie to another line of the chunk: local references
    resolve chunk-wide (a shared fullUrl, a subject naming another line's entry), and a report
    key a fallback line may also write must keep its lines' order."""
    rep = mapped.reports
    index = fhir_ingest._index(entries)
    shared: set[str] = set(index)  # fullUrls another line names or has too
    for _, raw in mapped.fallback:
        for ref in _REFERENCE.findall(raw):
            text = ref.decode("utf-8", "replace")
            shared.update((text, "/".join(text.split("/")[-2:])))
    urls = list(itertools.chain.from_iterable(mapped.urls.values()))
    if len(set(urls)) != len(urls):
        shared.update(u for u, n in collections.Counter(urls).items() if n > 1)
    keys = _possible_keys(entries) if entries else set()
    out = set()
    for k, line in enumerate(rep["line"]):
        subject = fhir_ingest.local(index, rep["patient_ref"][k]) if index else None
        tied = shared and not shared.isdisjoint(mapped.urls[line])
        if tied or subject is not None or (keys and rep["key"][k][:200] in keys):
            out.add(k)
    return out


def _possible_keys(entries: list[Entry]) -> set[str]:
    """Report keys the per-line path could write for these entries (a superset)."""
    out = set()
    for e in entries:
        r = e.resource
        if isinstance(r, dict) and r.get("resourceType") in ("DiagnosticReport", "Observation"):
            try:
                placer, filler = fhir_map._numbers(r, "")
            except (RhipError, TypeError, AttributeError, KeyError):
                continue
            out.add((f"filler:{filler}" if filler else f"placer:{placer}")[:200])
    return out


def parse_chunk(chunk: list[tuple[int, bytes]]) -> list[Entry]:
    """Entries of a chunk's lines; the line number is each entry's unit."""
    entries: list[Entry] = []
    for n, raw in chunk:
        text = raw.strip()
        if not text:
            continue
        try:
            data = _loads(text)
        except _JSONError as exc:
            entries.append(Entry("line", None, n, error=FhirMalformed(f"not valid JSON: {exc}")))
            continue
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            for i, item in enumerate(data.get("entry") or []):
                item = item if isinstance(item, dict) else {}
                entries.append(Entry(f"Bundle.entry[{i}].resource", item.get("resource"), n,
                                     item.get("fullUrl")))  # fmt: skip
            continue
        kind = data.get("resourceType") if isinstance(data, dict) else None
        entries.append(Entry(str(kind or "line"), data, n))
    return entries


def _bad_lines(entries: list[Entry], chunk, name: str) -> list[tuple[LineError, bytes]]:
    raw_by_line = dict(chunk)
    out: dict[int, LineError] = {}
    for e in entries:
        if e.error is not None and e.unit not in out:
            out[e.unit] = LineError(name, e.unit, e.error.message)
    return [(err, raw_by_line[line]) for line, err in sorted(out.items())]
