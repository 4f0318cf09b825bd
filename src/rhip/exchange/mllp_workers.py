"""The MLLP listener across processes (多进程接入): one acceptor, N worker processes.

Python runs one thread at a time in a process, so one listener parses and checks one batch at a
time while the database waits for it, and then waits for the database. With N workers, N batches
are parsed, checked and committed at once, on N cores. The acceptor takes each connection and
hands its socket (the descriptor itself, over a Unix socket: ``socket.send_fds``) to the worker
with the fewest open connections; the worker reads, stores and acknowledges that connection's
messages exactly as the single-process listener does (``mllp.Committer``: group commit, ACK after
commit). Nothing is read by the acceptor, so nothing can be lost in the hand-over.

Workers die with the acceptor (``PR_SET_PDEATHSIG``): a SIGKILL of the listener leaves no worker
answering on its connections. PostgreSQL only: on SQLite one writer at a time is the rule, and
the listener stays one process.

A worker is this module run as a program::

    python -m rhip.exchange.mllp_workers --db URL --channel FD [--resolver module:function]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("rhip.exchange.mllp")

READY, CLOSED = b"R", b"-"  # worker → acceptor: warmed up; one connection ended
_PR_SET_PDEATHSIG = 1


@dataclass
class _Worker:
    proc: subprocess.Popen
    channel: socket.socket  # the acceptor's end of the Unix socket pair
    connections: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False


class PooledServer:
    """The acceptor: the listening socket and the worker processes behind it.

    Quacks like the ``asyncio.Server`` that ``serve_mllp`` returns for one process
    (``sockets``, ``close``, ``wait_closed``, ``serve_forever``, ``async with``), plus
    ``committer.close()`` (stops the workers, which write their scorecard counts). A worker that
    exits after it was ready is replaced (its connections are lost: their senders reconnect and
    resend what was not acknowledged); one that exits while starting fails ``start``.
    """

    def __init__(self, spawn: Callable[[], _Worker]):
        self._spawn = spawn
        self.workers: list[_Worker] = []
        self._sock: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.committer = self  # ``close()`` below is what a committer's close does here
        self._accepting: asyncio.Task | None = None
        self._closed = asyncio.Event()

    @classmethod
    async def start(
        cls,
        db_url: str,
        host: str,
        port: int,
        processes: int,
        args: list[str],
        *,
        secret_key: str | None = None,
    ) -> PooledServer:
        """Spawn ``processes`` workers, wait until each is warmed up, then listen.
        ``secret_key``: the MPI vault's key for the workers (default: their RHIP_SECRET_KEY)."""
        env = dict(os.environ, **({"RHIP_SECRET_KEY": secret_key} if secret_key else {}))
        server = cls(lambda: _spawn(db_url, args, env))
        try:
            server.workers = [server._watch(server._spawn()) for _ in range(processes)]
            await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in server.workers)), 120)
            failed = [w.proc.poll() for w in server.workers if w.gone]
            if failed:
                raise RuntimeError(f"MLLP worker processes exited while starting: codes {failed}")
            sock = socket.create_server((host, port), reuse_port=False, backlog=128)
            sock.setblocking(False)
            server._sock, server.sockets = sock, [sock]
            server._accepting = asyncio.ensure_future(server._accept())
            return server
        except BaseException:
            server.close()
            raise

    def _watch(self, worker: _Worker) -> _Worker:
        asyncio.get_running_loop().add_reader(worker.channel.fileno(), self._heard, worker)
        return worker

    def _heard(self, worker: _Worker) -> None:
        """A worker's messages: ready, connections closed, or its end (EOF)."""
        try:
            data = worker.channel.recv(4096)
        except BlockingIOError:
            return
        if data:
            if READY in data:
                worker.ready.set()
            worker.connections -= data.count(CLOSED)
            return
        asyncio.get_running_loop().remove_reader(worker.channel.fileno())
        worker.gone = True
        code = worker.proc.wait()
        was_ready = worker.ready.is_set()
        worker.ready.set()  # ``start`` waits for no worker that is gone
        if was_ready and not self._closed.is_set():
            log.error("MLLP worker %s exited (code %s); starting another", worker.proc.pid, code)
            self.workers[self.workers.index(worker)] = self._watch(self._spawn())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            with conn:
                alive = [w for w in self.workers if w.ready.is_set() and not w.gone]
                if not alive:  # no worker ready: refuse, so the sender retries later
                    log.error("MLLP: no worker process is ready; connection refused")
                    continue
                worker = min(alive, key=lambda w: w.connections)
                try:
                    socket.send_fds(worker.channel, [b"c"], [conn.fileno()])
                except OSError:
                    log.exception("MLLP: hand-over to worker %s failed", worker.proc.pid)
                    continue
                worker.connections += 1

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._accepting is not None:
            self._accepting.cancel()
        loop = asyncio.get_event_loop()
        for w in self.workers:
            with contextlib.suppress(Exception):
                loop.remove_reader(w.channel.fileno())
        if self._sock is not None:
            self._sock.close()
        _stop(self.workers)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> PooledServer:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


def _spawn(db_url: str, args: list[str], env: dict[str, str]) -> _Worker:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    cmd = [sys.executable, "-m", "rhip.exchange.mllp_workers", "--db", db_url,
           "--channel", str(theirs.fileno()), *args]  # fmt: skip
    proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], env=env)
    theirs.close()
    mine.setblocking(False)
    return _Worker(proc, mine)


def _stop(workers: list[_Worker], timeout: float = 10.0) -> None:
    """SIGTERM each worker (it finishes its batch and writes its scorecard counts), then wait."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.terminate()
    for w in workers:
        try:
            w.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
        w.channel.close()


# -- the worker process ---------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGKILL this process when the acceptor dies, however it dies (Linux)."""
    parent = os.getppid()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


async def _worker(args: argparse.Namespace) -> None:
    from rhip.exchange.mllp import Committer, load_resolver, make_ingest, serve_connection
    from rhip.store import make_engine

    loop = asyncio.get_running_loop()
    channel = socket.socket(fileno=args.channel)
    channel.setblocking(False)
    ingest = await make_ingest(make_engine(args.db), load_resolver(args.resolver), args.max_bytes)
    committer = Committer(ingest, inline=True)
    stopped = asyncio.Event()
    tasks: set[asyncio.Task] = set()

    async def serve(conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            await serve_connection(committer, reader, writer, args.idle_timeout)
        finally:
            with contextlib.suppress(OSError):
                channel.send(CLOSED)

    def on_channel() -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(channel, 16, 16)
        except BlockingIOError:
            return
        if not msg:  # the acceptor is gone
            stopped.set()
            return
        for fd in fds:
            task = asyncio.ensure_future(serve(socket.socket(fileno=fd)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop.add_reader(channel.fileno(), on_channel)
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    channel.send(READY)
    try:
        await stopped.wait()
    finally:
        loop.remove_reader(channel.fileno())
        for task in list(tasks):
            task.cancel()
        committer.close()


def main(argv: list[str] | None = None) -> None:
    _die_with_parent()
    parser = argparse.ArgumentParser(description="rhip MLLP worker process")
    parser.add_argument("--db", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--resolver")
    parser.add_argument("--max-bytes", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=None)
    from rhip.exchange.mllp import run_logged

    run_logged(_worker(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
