"""The MLLP listener (HL7 v2 over TCP): frames ``VT message FS CR``, one ACK per message, sent
only after the message's outcome is committed (MLLP release 2: the ACK is the commit receipt).

Frames from all connections go to a ``Committer``: a worker (a thread, so the event loop keeps
reading) takes every frame waiting — waiting up to 2 ms for the other connections' next frames —
and hands them to ``V2Ingest.receive_many``: on PostgreSQL one transaction and one commit for all
of them (group commit); then it answers each connection.

Run alone for tests and integration rigs::

    python -m rhip.exchange.mllp --db sqlite:///var/rhip.db --port 2575
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from rhip.exchange import terminology
from rhip.exchange.ingest import DEFAULT_MAX_BYTES, V2Ingest
from rhip.exchange.patients import PatientResolver
from rhip.kernel.crypto import IdentifierVault

if TYPE_CHECKING:
    from rhip.exchange.mllp_workers import PooledServer

log = logging.getLogger("rhip.exchange.mllp")

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
END = FS + CR
_BLANK = b" \t\r\n"
CHUNK = 64 * 1024
MAX_BATCH = 64  # messages in one group commit
GATHER = 0.002  # seconds a small batch may wait for other connections' messages
KEEP_IDLE = 10.0  # seconds a worker's kept connection may idle; then a fresh (pinged) one
SCORECARD_EVERY = 1.0  # seconds between scorecard writes (statistics only; see ScorecardTally)
TRUNCATED = (
    "MLLP frame not terminated: the connection closed or fell idle, or a new frame began, "
    "before the end block (FS CR); no ACK could be sent"
)
STRAY = "bytes outside any MLLP frame (no start block VT before them); no ACK could be sent"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # message | oversize | truncated | stray
    data: bytes  # the frame's content (for oversize: its first max_bytes)
    size: int  # the content's full length


async def read_frames(
    reader: asyncio.StreamReader, max_bytes: int, idle_timeout: float | None = None
) -> AsyncIterator[Frame]:
    """Frames from a stream. An oversize frame is read to its end and reported with its head
    only; bytes before a VT and a frame cut off by EOF, idleness or a new VT are reported too.
    """
    buf = bytearray()
    in_frame = discarding = False
    head, size = b"", 0
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(CHUNK), idle_timeout)
        except TimeoutError:
            chunk = b""
        if not chunk:
            if in_frame:
                yield Frame("truncated", head if discarding else bytes(buf), size + len(buf))
            elif buf.strip(_BLANK):
                yield Frame("stray", bytes(buf[:max_bytes]), len(buf))
            return
        buf += chunk
        while True:
            if not in_frame:
                start = buf.find(VT)
                if start < 0:
                    break
                if buf[:start].strip(_BLANK):
                    yield Frame("stray", bytes(buf[:start][:max_bytes]), start)
                del buf[: start + 1]
                in_frame, discarding, head, size = True, False, b"", 0
            end, restart = buf.find(END), buf.find(VT)
            if restart >= 0 and (end < 0 or restart < end):  # the sender began anew
                yield Frame(
                    "truncated", head if discarding else bytes(buf[:restart]), size + restart
                )
                del buf[:restart]
                in_frame = False
                continue
            if end >= 0:
                if discarding:
                    yield Frame("oversize", head, size + end)
                elif end > max_bytes:
                    yield Frame("oversize", bytes(buf[:max_bytes]), end)
                else:
                    yield Frame("message", bytes(buf[:end]), end)
                del buf[: end + len(END)]
                in_frame = False
                continue
            if not discarding and len(buf) > max_bytes:
                head, discarding = bytes(buf[:max_bytes]), True
            if discarding:  # keep a trailing FS: its CR may be in the next chunk
                drop = len(buf) - (1 if buf.endswith(FS) else 0)
                size += drop
                del buf[:drop]
            break


class Committer:
    """Batches frames that wait at the same time into one ``receive_many`` call per worker.

    A worker takes every frame waiting, from all connections; while its batch is smaller than
    the number of connections that could still send (open, and not waiting for an ACK of another
    batch), it waits up to ``gather`` seconds for more: senders wait for each ACK, so one commit
    can serve at most one message per connection, and a commit of 1 message costs nearly what
    one of 4 does. ``workers`` batches run at once; on SQLite one, writes are serialised anyway.

    On PostgreSQL each worker keeps its connection between batches (no pool checkout and
    pre-ping per batch); it is dropped after a failed batch or ``KEEP_IDLE`` s idle.
    """

    def __init__(
        self,
        ingest: V2Ingest,
        workers: int = 1,
        max_batch: int = MAX_BATCH,
        gather: float = GATHER,
        *,
        inline: bool = False,
    ):
        self.ingest = ingest
        # inline: batches run on the event loop's thread (a worker process that only serves
        # MLLP: frames that arrive meanwhile wait in the socket for the next batch anyway, and
        # the hand-over to a thread and back costs more than the loop would do meanwhile)
        self.inline = inline
        self.max_batch = max_batch
        self.gather = gather
        self.workers = workers if ingest.group_commit else 1
        self.connections = 0  # open connections (kept by ``serve_connection``)
        self._in_flight = 0  # frames taken by a worker, not yet answered
        self.batches = self.frames = 0  # committed so far: frames / batches is the group size
        self._queue: asyncio.Queue = asyncio.Queue()
        self._local = threading.local()  # the worker thread's kept connection
        self._kept: set[Connection] = set()
        self._kept_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mllp-commit")
        self._tasks = [asyncio.ensure_future(self._run()) for _ in range(self.workers)]

    async def submit(self, raw: bytes, peer: str, size: int | None = None) -> bytes:
        """The ACK for one frame, once its batch is committed; raises if it could not be."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(((raw, peer, size), future))
        return await future

    async def _take(self) -> list:
        """Every frame waiting; more for up to ``gather`` s while more senders could send."""
        queue = self._queue
        batch = [await queue.get()]
        deadline = None
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            if len(batch) + self._in_flight >= self.connections:
                break  # every connection's message is here or in another batch
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.gather
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take()
            self._in_flight += len(batch)
            self.batches, self.frames = self.batches + 1, self.frames + len(batch)
            frames = [frame for frame, _ in batch]
            try:
                if self.inline:
                    acks = self._receive(frames)
                else:
                    acks = await loop.run_in_executor(self._pool, self._receive, frames)
            except Exception as exc:  # the database is unreachable: no ACK for any of them
                acks = None
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                self._in_flight -= len(batch)
            if acks is None:
                continue
            for (_, future), ack in zip(batch, acks, strict=True):
                if not future.done():
                    future.set_result(ack)
            if self.ingest.scorecard is not None and self.ingest.scorecard.due():
                await self._flush_scorecard(loop, force=False)

    def _receive(self, frames: list) -> list[bytes]:
        """``receive_many`` on the worker thread's kept connection (PostgreSQL)."""
        if not self.ingest.group_commit:
            return self.ingest.receive_many(frames)
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and time.monotonic() - local.used > KEEP_IDLE:
            local.conn = None
            self._drop(conn)
            conn = None
        if conn is None:
            conn = local.conn = self.ingest.engine.connect()
            with self._kept_lock:
                self._kept.add(conn)
        try:
            acks = self.ingest.receive_many(frames, conn)
        except BaseException:  # the connection may be broken: not reused
            local.conn = None
            self._drop(conn, invalidate=True)
            raise
        local.used = time.monotonic()
        return acks

    def _drop(self, conn: Connection, invalidate: bool = False) -> None:
        with self._kept_lock:
            self._kept.discard(conn)
        with contextlib.suppress(Exception):
            if invalidate:
                conn.invalidate()
            conn.close()

    async def _flush_scorecard(self, loop, *, force: bool) -> None:
        try:
            await loop.run_in_executor(self._pool, lambda: self.ingest.flush_scorecard(force=force))
        except Exception:  # statistics only: kept in memory, written at the next flush
            log.exception("scorecard flush failed; the counts are kept for the next one")

    def close(self) -> None:
        """Stop the workers and write the scorecard counts still in memory."""
        for task in self._tasks:
            task.cancel()
        self._pool.shutdown(wait=True)
        for conn in list(self._kept):
            self._drop(conn)
        if self.batches:
            log.info("%d frames in %d group commits (%.1f a commit)",
                     self.frames, self.batches, self.frames / self.batches)  # fmt: skip
        try:
            self.ingest.flush_scorecard(force=True)
        except Exception:
            log.exception("scorecard flush at shutdown failed: up to a few seconds of counts lost")


async def make_ingest(
    engine: Engine,
    resolver: PatientResolver | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    vault: IdentifierVault | None = None,
    scorecard_every: float | None = SCORECARD_EVERY,
) -> V2Ingest:
    """The ingest a listener feeds, with the UCUM registry (~1 s of CPU, once per process)
    built first: a listener that accepts connections runs at full speed from its first message.
    """
    ingest = V2Ingest(
        engine, resolver, vault=vault, max_bytes=max_bytes, scorecard_every=scorecard_every
    )
    await asyncio.to_thread(terminology.warm)
    return ingest


async def serve_mllp(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 2575,
    *,
    resolver: PatientResolver | None = None,
    vault: IdentifierVault | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    idle_timeout: float | None = 300.0,
    workers: int = 1,
    scorecard_every: float | None = SCORECARD_EVERY,
    processes: int = 1,
    resolver_spec: str | None = None,
    secret_key: str | None = None,
) -> Listener | PooledServer:
    """Start listening (``port`` 0: any free port) and return the server; the caller owns it.

    Patients resolve through the MPI with ``vault`` (default: from RHIP_SECRET_KEY) unless a
    ``resolver`` is given. ``workers``: batches committed at once (keep it within the engine's
    connection pool). ``scorecard_every``: seconds between writes of the quality scorecard
    counts (None: in each message's transaction); the server's ``committer.close()`` writes the
    rest. ``processes`` > 1 (PostgreSQL): that many worker processes behind one acceptor
    (``rhip.exchange.mllp_workers``), resolving patients with ``resolver_spec``
    (``module:function``; default the MPI with ``secret_key``).
    """
    if processes > 1 and engine.dialect.name == "postgresql":
        if resolver is not None:
            raise ValueError("worker processes take a resolver_spec, not a resolver object")
        return await _pooled(engine, host, port, processes, max_bytes, idle_timeout,
                             resolver_spec, secret_key)  # fmt: skip
    if processes > 1:
        log.info("MLLP on %s: one process (one writer at a time)", engine.dialect.name)
    resolver = resolver or load_resolver(resolver_spec)
    ingest = await make_ingest(
        engine, resolver, max_bytes, vault=vault, scorecard_every=scorecard_every
    )
    committer = Committer(ingest, workers)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(committer, reader, writer, idle_timeout)

    return Listener(await asyncio.start_server(on_connection, host, port), committer)


class Listener:
    """The listener of one process: its server socket (``sockets``, ``close``, ``wait_closed``,
    ``serve_forever``, ``async with``) and the ``committer`` whose ``close()`` writes what is
    kept in memory.

    The same on asyncio's loop and on uvloop's (``rhip serve`` runs on uvloop through uvicorn),
    whose servers take no attributes, do not end ``serve_forever`` on ``close`` and make
    ``wait_closed`` wait for every open connection: here ``close`` ends ``serve_forever`` and
    ``wait_closed`` returns once the socket is closed (as on Python 3.11's asyncio). Open
    connections are then cancelled with the loop: a message not yet acknowledged is resent by
    its sender."""

    def __init__(self, server: asyncio.AbstractServer, committer: Committer):
        self.server, self.committer = server, committer
        self._closed = asyncio.Event()

    @property
    def sockets(self):
        return self.server.sockets

    def is_serving(self) -> bool:
        return self.server.is_serving()

    def close(self) -> None:
        self.server.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve_forever(self) -> None:
        await self.server.start_serving()
        await self._closed.wait()

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


async def _pooled(engine, host, port, processes, max_bytes, idle_timeout, spec, secret_key):
    from rhip.exchange.mllp_workers import PooledServer

    args = ["--max-bytes", str(max_bytes)]
    args += ["--idle-timeout", str(idle_timeout)] if idle_timeout is not None else []
    args += ["--resolver", spec] if spec else []
    url = engine.url.render_as_string(hide_password=False)
    return await PooledServer.start(url, host, port, processes, args, secret_key=secret_key)


async def serve_connection(
    committer: Committer,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    idle_timeout: float | None,
) -> None:
    peername = writer.get_extra_info("peername")
    peer = str(peername[0]) if peername else ""
    ingest = committer.ingest
    committer.connections += 1
    try:
        async for frame in read_frames(reader, ingest.max_bytes, idle_timeout):
            if frame.kind in ("message", "oversize"):
                size = frame.size if frame.kind == "oversize" else None
                ack = await committer.submit(frame.data, peer, size)
                writer.write(VT + ack + END)
                await writer.drain()
            else:
                reason = TRUNCATED if frame.kind == "truncated" else STRAY
                await asyncio.to_thread(
                    ingest.store_unacknowledged, frame.data, peer, reason, frame.size
                )
    except (ConnectionError, asyncio.IncompleteReadError):
        log.info("MLLP peer %s went away", peer)
    except Exception:  # the database is unreachable: send nothing, so the sender resends
        log.exception("MLLP connection from %s: closing without ACK", peer)
    finally:
        committer.connections -= 1
        writer.close()
        # cancelled while closing: the server is shutting down, nothing is left to answer
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await writer.wait_closed()


def load_resolver(spec: str | None) -> PatientResolver | None:
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


async def _main(args: argparse.Namespace) -> None:
    from rhip.store import make_engine, upgrade

    engine = make_engine(args.db)
    if args.migrate:
        upgrade(engine)
    server = await serve_mllp(
        engine, args.host, args.port, resolver_spec=args.resolver, max_bytes=args.max_bytes,
        workers=args.workers, processes=args.processes,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    print(f"MLLP listening on {args.host}:{port}", flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # SIGTERM: stop and write what is kept
        loop.add_signal_handler(signal.SIGTERM, server.close)
    try:
        async with server:
            with contextlib.suppress(asyncio.CancelledError):
                await server.serve_forever()
    finally:
        server.committer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="rhip MLLP listener (HL7 v2.5.1)")
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2575, help="0: any free port")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--resolver", help="module:function resolving patients (default: MPI)")
    parser.add_argument("--workers", type=int, default=1, help="batches committed at once")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (PostgreSQL)")
    parser.add_argument("--migrate", action="store_true", help="apply migrations first")
    run_logged(_main(parser.parse_args(argv)))


def run_logged(main_coroutine) -> None:
    """A listener program's main: log lines to stderr, run until stopped, no trace on Ctrl-C.

    On uvloop where it is installed (as ``rhip serve`` runs through uvicorn): its event loop
    costs a third less CPU a message than asyncio's own (~0.09 against ~0.13 ms)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        run(main_coroutine)


if __name__ == "__main__":
    main()
