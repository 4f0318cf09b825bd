"""The MLLP listener across worker processes (PostgreSQL): the acceptor hands connections to the
worker with the fewest, each worker stores and acknowledges its connections' messages, and the
workers stop with the acceptor, SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from exchange.support import ack_fields, add_institution, frame, oru, start_listener
from rhip.exchange.models import inbox_messages, reports

TESTS = Path(__file__).resolve().parents[1]


def _start(url: str, processes: int) -> tuple[subprocess.Popen, int]:
    return start_listener(url, processes, stderr=subprocess.PIPE)


def _workers(pid: int) -> list[int]:
    """The MLLP worker processes among ``pid``'s children."""
    pgrep = ["pgrep", "-P", str(pid), "-f", "rhip.exchange.mllp_workers"]
    out = subprocess.run(pgrep, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _send(port: int, ids: list[str], acks: dict[str, str]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        for cid in ids:
            s.sendall(frame(oru(cid, filler=cid)))
            ack = b""
            while not ack.endswith(b"\x1c\r"):
                chunk = s.recv(4096)
                assert chunk, "connection closed before the ACK"
                ack += chunk
            acks[cid] = ack_fields(ack[1:-2])["MSA"][1]


@pytest.mark.postgres
def test_workers_share_the_connections_and_store_every_message_once(
    engine: Engine, database_url: str
) -> None:
    """On SQLite (one writer) the listener stays one process and serves all four itself."""
    processes = 2 if engine.dialect.name == "postgresql" else 1
    add_institution(engine)
    proc, port = _start(database_url, processes=2)
    acks: dict[str, str] = {}
    try:
        assert len(_workers(proc.pid)) == (processes if processes > 1 else 0)
        parts = [[f"W{c}-{i}" for i in range(15)] for c in range(4)]
        threads = [threading.Thread(target=_send, args=(port, p, acks)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        proc.send_signal(signal.SIGTERM)  # workers stop and log their group commits
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acks) == 60 and set(acks.values()) == {"AA"}
    # each worker served two of the four connections: both logged their commits
    served = [line for line in err.splitlines() if "group commits" in line]
    assert [line.split()[4] for line in served] == [str(60 // processes)] * processes, served
    with engine.connect() as conn:
        stored = dict(conn.execute(
            select(inbox_messages.c.control_id, func.count()).group_by(inbox_messages.c.control_id)
        ).all())  # fmt: skip
        n_reports = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    assert stored == {cid: 1 for cid in acks} and n_reports == 60


@pytest.mark.postgres
def test_workers_die_with_a_killed_acceptor(engine: Engine, database_url: str) -> None:
    proc, _ = _start(database_url, processes=2)
    workers = _workers(proc.pid)
    assert len(workers) == (2 if engine.dialect.name == "postgresql" else 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)


@pytest.mark.postgres
def test_a_worker_that_dies_is_replaced(engine: Engine, database_url: str) -> None:
    """A worker killed while serving is replaced; the sender's next connection is served."""
    add_institution(engine)
    proc, port = _start(database_url, processes=2)
    try:
        workers = _workers(proc.pid)
        if engine.dialect.name != "postgresql":
            assert workers == []  # SQLite: one process, nothing to replace
            return
        acks: dict[str, str] = {}
        _send(port, ["D-1"], acks)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _workers(proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and workers[0] not in now and workers[1] in now
        for n in range(2, 6):  # new connections go to either worker, the new one included
            _send(port, [f"D-{n}"], acks)
        assert acks == {f"D-{n}": "AA" for n in range(1, 6)}
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.postgres
def test_workers_that_cannot_start_stop_the_listener_before_it_listens(
    engine: Engine, database_url: str
) -> None:
    """A worker that dies while starting (here: its resolver cannot be imported) is not retried
    for ever: the listener exits with an error and never opens its port."""
    run = subprocess.run(
        [sys.executable, "-m", "rhip.exchange.mllp", "--db", database_url, "--port", "0",
         "--resolver", "no_such_module:resolve", "--processes", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0 and "listening" not in run.stdout
    assert "no_such_module" in run.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_app_starts_and_stops_its_mllp_workers(
    engine: Engine, tmp_path: Path, loop: str
) -> None:
    """``rhip serve --mllp-processes 2``: the app's lifespan starts the workers (children of the
    serving process) behind its port, and stops them when the app stops; on SQLite it serves
    in its own process. On asyncio's event loop and on uvloop's, which uvicorn takes when it is
    installed (its servers take no attributes and end differently)."""
    import asyncio
    import concurrent.futures

    import uvloop

    from rhip.api import create_app
    from rhip.kernel.settings import Settings

    add_institution(engine)
    with socket.socket() as probe:  # a free port for the listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(var_dir=tmp_path, mllp_port=port, mllp_processes=2)
    app = create_app(settings, engine, mllp=True)
    expected = 2 if engine.dialect.name == "postgresql" else 0
    acks: dict[str, str] = {}

    async def run() -> list[int]:
        async with app.router.lifespan_context(app):
            workers = _workers(os.getpid())
            assert len(workers) == expected
            await asyncio.to_thread(_send, port, ["APP-1"], acks)
        return workers

    # in a thread of its own: an earlier test in this process may have left a loop running here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        workers = pool.submit(uvloop.run if loop == "uvloop" else asyncio.run, run()).result(60)
    assert acks == {"APP-1": "AA"}  # its patient resolved through the MPI, in a worker
    assert not any(_alive(w) for w in workers)
    with engine.connect() as conn:
        row = conn.execute(select(inbox_messages.c.status, inbox_messages.c.patient_id)).one()
    assert row.status == "processed" and row.patient_id
