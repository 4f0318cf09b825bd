"""Nothing is lost: SIGKILL the MLLP listener mid-stream, restart it, and every message the
senders saw acknowledged is stored exactly once (the resends of the rest are applied once too).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from exchange.support import add_institution, frame, oru, start_listener
from rhip.exchange.models import inbox_messages, reports

TESTS = Path(__file__).resolve().parents[1]


def _start(url: str, processes: int = 1) -> tuple[subprocess.Popen, int]:
    return start_listener(url, processes)


class Sender(threading.Thread):
    """Sends its messages in order; on a broken connection, reconnects and resends the first
    message not yet acknowledged (what an HL7 interface engine does)."""

    def __init__(self, name: str, count: int, port: list[int]):
        super().__init__(daemon=True)
        self.ids = [f"{name}-{i}" for i in range(count)]
        self.port = port
        self.acked: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while len(self.acked) < len(self.ids) and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port[0]), timeout=10) as s:
                    for cid in self.ids[len(self.acked) :]:
                        s.sendall(frame(oru(cid, filler=cid)))
                        ack = b""
                        while not ack.endswith(b"\x1c\r"):
                            chunk = s.recv(4096)
                            if not chunk:
                                raise ConnectionError("closed")
                            ack += chunk
                        assert b"MSA|AA|" + cid.encode() in ack, ack
                        self.acked.append(cid)
            except OSError:
                time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(
    engine: Engine, database_url: str, processes: int
) -> None:
    """With worker processes (PostgreSQL), SIGKILL of the acceptor takes its workers down with
    it: no worker goes on answering, and what they ACKed was committed."""
    add_institution(engine)
    proc, port = _start(database_url, processes)
    ports = [port]
    senders = [Sender(f"S{n}", 40, ports) for n in range(3)]
    try:
        for s in senders:
            s.start()
        while sum(len(s.acked) for s in senders) < 30:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        acked_before = {cid for s in senders for cid in s.acked}
        proc, ports[0] = _start(database_url, processes)
        for s in senders:
            s.join(60)
    finally:
        proc.kill()
        proc.wait()
    assert all(len(s.acked) == 40 for s in senders), [len(s.acked) for s in senders]
    with engine.connect() as conn:
        applied = conn.execute(
            select(inbox_messages.c.control_id, func.count())
            .where(inbox_messages.c.status == "processed")
            .group_by(inbox_messages.c.control_id)
        ).all()
        report_count = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    counts = dict(applied)
    assert acked_before <= set(counts)
    assert set(counts) == {cid for s in senders for cid in s.ids}
    assert set(counts.values()) == {1} and report_count == 120
