"""Bulk NDJSON import (批量导入): one FHIR resource or Bundle per line, by file or ``$import``.

Lines are read in chunks (default 1,000). Each chunk is stored raw in the inbox (channel
``ndjson``, key = sender + SHA-256 of the chunk, so re-importing a file skips the chunks already
taken) and then applied set-based: every line parsed and validated, patients resolved once per
distinct reference, and one ``reports.store`` for the whole chunk.

A line is the unit: a bad line (not JSON, invalid resource, unknown patient, failed quality
rule) is kept as its own failed inbox message with the error naming file and line, and every
other line of the chunk is applied. A Bundle on one line is applied entirely or not at all.

One import call is one pipeline (``_Pipeline``): while a writer thread stores chunk k (stage B:
its transaction), the caller parses, maps and checks chunk k+1 (stage A), across the files of
``import_files`` too. The result is the sequential one: chunks are written one at a time, in
order, and every stage-A read that an unwritten chunk could still change waits for it first.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import Connection, Engine

from rhip.exchange import bulk_check, ndjson_chunk
from rhip.exchange.fhir_bundle import FhirIngest, find_sender
from rhip.exchange.fhir_ingest import Channel
from rhip.exchange.fhir_refs import PatientLookup
from rhip.exchange.fhir_validate import SenderUnknown, check_resource
from rhip.exchange.inbox import Arrival
from rhip.exchange.ndjson_chunk import CHANNEL, LineError
from rhip.exchange.patients import PatientResolver
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import RhipError

CHUNK_LINES = 1000
# how each resource of a line is validated: "fast" checks the elements rhip reads (types, value
# sets, paths in errors; ``check_structure`` compiled, bulk_check); "full" runs the R4B models
# too (~40x slower). See docs/fhir.md.
VALIDATORS = {"fast": bulk_check.check, "full": check_resource}
Progress = Callable[[int], None]  # called with the bytes of each chunk done
FilesProgress = Callable[[int, int], None]  # (index of the file, bytes of a chunk done)


@dataclass
class ImportResult:
    lines: int = 0
    chunks: int = 0
    duplicate_chunks: int = 0
    reports: int = 0
    patients: int = 0
    errors: list[LineError] = field(default_factory=list)
    seconds: float = 0.0


def import_file(
    engine: Engine,
    path: Path | str,
    sender: str,
    progress: Progress | None = None,
    *,
    vault: IdentifierVault | None = None,
    resolver: PatientResolver | None = None,
    chunk_lines: int = CHUNK_LINES,
    validate: str = "fast",
) -> ImportResult:
    """Import one NDJSON file for the institution ``sender`` (id or credit code)."""
    advance = (lambda _, size: progress(size)) if progress is not None else None
    return import_files(engine, [(path, sender)], advance, vault=vault, resolver=resolver,
                        chunk_lines=chunk_lines, validate=validate)[0]  # fmt: skip


def import_files(
    engine: Engine,
    files: Sequence[tuple[Path | str, str]],
    progress: FilesProgress | None = None,
    *,
    vault: IdentifierVault | None = None,
    resolver: PatientResolver | None = None,
    chunk_lines: int = CHUNK_LINES,
    validate: str = "fast",
) -> list[ImportResult]:
    """Import NDJSON files in order, each ``(path, sender)`` for its institution, as one
    pipeline: the last chunk of a file is written while the next file's first is prepared.
    The same rows as ``import_file`` file by file; one result per file."""
    ingest = FhirIngest(engine, resolver, vault=vault or _default_vault())
    results = []
    with _Pipeline() as pipeline, gc_paused():
        for index, (path, sender) in enumerate(files):
            path = Path(path)
            advance = functools.partial(progress, index) if progress is not None else None
            with path.open("rb") as fh:
                results.append(_import(pipeline, ingest, sender, _numbered(fh), path.name,
                                       advance, chunk_lines, validate))  # fmt: skip
    return results


def import_body(
    ingest: FhirIngest, body: bytes, sender: str, name: str = "$import"
) -> ImportResult:
    """``POST /fhir/$import``: the same import for an NDJSON request body."""
    return import_lines(ingest, sender, _numbered(body.splitlines(keepends=True)), name)


def import_lines(
    ingest: FhirIngest,
    claimed: str,
    lines: Iterable[tuple[int, bytes]],
    name: str,
    progress: Progress | None = None,
    chunk_lines: int = CHUNK_LINES,
    validate: str = "fast",
) -> ImportResult:
    with _Pipeline() as pipeline, gc_paused():
        return _import(pipeline, ingest, claimed, lines, name, progress, chunk_lines, validate)


def _import(pipeline, ingest: FhirIngest, claimed, lines, name, progress, chunk_lines, validate):
    """Stage A of every chunk of one file; the result is complete once ``pipeline`` drained."""
    started = time.perf_counter()
    arrival = Arrival(b"", CHANNEL, sender=claimed[:64], control_id=name[-200:], received_at=now())
    sender = _sender(pipeline, ingest, claimed, arrival)
    lookup = _Settled(ingest.lookup, pipeline)
    channel = Channel(ingest.engine, sender, ingest.resolver, lookup)
    result = ImportResult()

    def done(size: int, outcome: ndjson_chunk.Outcome) -> None:
        result.reports += outcome.reports
        result.patients += outcome.patients
        result.duplicate_chunks += outcome.duplicate
        result.errors += outcome.errors
        result.seconds = round(time.perf_counter() - started, 3)
        if progress is not None:
            progress(size)

    for lines_ in _chunks(lines, chunk_lines):
        chunk = ndjson_chunk.read(lines_, name, sender)
        if pipeline.writing(chunk.key):  # the same bytes, not yet written: taken once they are
            pipeline.drain()
        ndjson_chunk.prepare(ingest, channel, chunk, VALIDATORS[validate])
        result.chunks += 1
        result.lines += len(lines_)
        pipeline.submit(chunk.key, functools.partial(ndjson_chunk.write, ingest, chunk),
                        functools.partial(done, len(chunk.arrival.raw)))  # fmt: skip
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _sender(pipeline: _Pipeline, ingest: FhirIngest, claimed: str, arrival: Arrival) -> Sender:
    """``FhirIngest.sender``, with the refusal stored after the chunks before it."""
    try:
        with ingest.engine.connect() as conn:
            return find_sender(conn, claimed)
    except SenderUnknown as exc:
        pipeline.drain()
        ingest.store_failed(arrival, exc)
        raise


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while chunks are parsed, mapped and stored.

    A chunk of 1,000 Bundle lines is ~700k dicts, lists and strings alive at once: with the
    collector on, its generation scans over them cost 3-4x the parsing itself (measured: 2.0 s vs
    0.55 s for 4,000 lines). JSON makes no reference cycles, so reference counting frees each
    chunk when it is dropped; the collector is back on (if it was) when the import is done. It
    stays off across chunks: with two of them in flight there is no moment without one alive.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    return ((n, raw) for n, raw in enumerate(lines, start=1))


def _chunks(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the pipeline --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Pending:
    key: str
    future: Future
    done: Callable


class _Pipeline:
    """Stage B of a chunk (its transaction) in a writer thread while the caller runs stage A of
    the next (parse, map, resolve, check): psycopg and sqlite3 release the GIL while the server
    or the engine works, so the two overlap. Chunks are written one at a time in submission
    order, and ``submit`` waits for the chunk before: at most one in flight (depth 1), so a
    chunk's outcome (inbox row included) is stored before ``done`` reports it.
    """

    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ndjson-writer")
        self._pending: _Pending | None = None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        pending, self._pending = self._pending, None
        self._writer.shutdown(wait=True)  # a chunk in flight ends its transaction either way
        if pending is None:
            return
        if exc is None:
            pending.done(pending.future.result())
        elif pending.future.exception() is not None:
            exc.add_note(f"and writing the chunk before failed: {pending.future.exception()!r}")

    def submit(self, key: str, write: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Write a chunk once the one before is written; ``done(outcome)`` runs in the caller's
        thread. A write that raises (its failure could not even be recorded) stops the import:
        the exception is raised here or on leaving the ``with``."""
        self.drain()
        self._pending = _Pending(key, self._writer.submit(write), done)

    def drain(self) -> bool:
        """Wait for the chunk in flight; whether there was one."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        pending.done(pending.future.result())
        return True

    def writing(self, key: str) -> bool:
        return self._pending is not None and self._pending.key == key


@dataclass
class _Settled:
    """MPI look-ups for stage A as the sequential import sees them: a patient not found while a
    chunk is in flight is asked for again once it is written, so a miss is a real one."""

    lookup: PatientLookup
    pipeline: _Pipeline

    def by_identifier(self, conn: Connection, system: str | None, value: str) -> list[str]:
        found = self.lookup.by_identifier(conn, system, value)
        if not found and self.pipeline.drain():
            found = self.lookup.by_identifier(conn, system, value)
        return found

    def by_id(self, conn: Connection, person_id: str) -> str | None:
        found = self.lookup.by_id(conn, person_id)
        if found is None and self.pipeline.drain():
            found = self.lookup.by_id(conn, person_id)
        return found


def _default_vault() -> IdentifierVault:
    from rhip.kernel.settings import Settings

    return IdentifierVault(Settings().secret_key)


# -- rhip ingest ---------------------------------------------------------------------------------
def ingest(
    files: list[Path] = typer.Argument(
        ..., help="NDJSON files: one FHIR resource or Bundle a line"
    ),
    sender: str = typer.Option(..., "--sender", help="institution id or credit code"),
) -> None:
    """Import NDJSON files of FHIR resources (批量导入), with a progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from rhip.kernel.settings import Settings
    from rhip.store import make_engine, upgrade

    console = Console(soft_wrap=True)
    for path in files:  # all of them before any is imported
        if not path.is_file():
            console.print(f"[red]{path}: no such file[/]")
            raise typer.Exit(2)
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    vault = IdentifierVault(settings.secret_key)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        tasks = [bar.add_task(p.name, total=p.stat().st_size) for p in files]
        try:
            results = import_files(
                engine, [(p, sender) for p in files], lambda i, n: bar.advance(tasks[i], n),
                vault=vault,
            )  # fmt: skip
        except RhipError as exc:
            console.print(f"[red]{exc.message}[/]")
            raise typer.Exit(2) from None
    for path, result in zip(files, results, strict=True):
        for err in result.errors:
            console.print(f"[red]{err}[/]")
        console.print(
            f"{path.name}: {result.lines} lines, {result.reports} reports, "
            f"{result.patients} patients, "
            f"{result.duplicate_chunks}/{result.chunks} chunks already imported, "
            f"{len(result.errors)} errors, {result.seconds} s"
        )
    if any(result.errors for result in results):
        raise typer.Exit(1)
