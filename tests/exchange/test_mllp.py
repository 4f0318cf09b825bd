"""MLLP over real sockets: framing, concurrent senders, python-hl7 interop, cut-off frames."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import Engine, func, select

from exchange.support import ack_fields, frame, oru, resolver
from rhip.exchange.mllp import Frame, read_frames, serve_mllp
from rhip.exchange.models import inbox_messages, reports
from rhip.quality.models import quality_daily

MLLP_SEND = Path(sys.executable).with_name("mllp_send")


def _serve(engine: Engine, client, **kw):
    """Run ``client(port)`` against a listener on a free port; returns what it returns."""

    async def main():
        server = await serve_mllp(engine, "127.0.0.1", 0, resolver=resolver, **kw)
        port = server.sockets[0].getsockname()[1]
        try:
            return await client(port)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


async def _exchange(port: int, payloads: list[bytes]) -> list[bytes]:
    """Send frames one by one on one connection, reading each ACK before the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    acks = []
    for p in payloads:
        writer.write(p)
        await writer.drain()
        data = await reader.readuntil(b"\x1c\r")
        acks.append(data[1:-2])
    writer.close()
    await writer.wait_closed()
    return acks


def _rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(inbox_messages))]


def _wait_rows(engine: Engine, n: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(engine)
        if len(rows) >= n:
            return rows
        time.sleep(0.05)
    return _rows(engine)


@pytest.mark.postgres
def test_concurrent_connections_each_get_their_acks(engine: Engine, sender_id: str) -> None:
    connections, n = 6, 8

    async def client(port):
        jobs = [
            _exchange(port, [frame(oru(f"C{c}-{i}", filler=f"F{c}-{i}")) for i in range(n)])
            for c in range(connections)
        ]
        return await asyncio.gather(*jobs)

    results = _serve(engine, client)
    for c, acks in enumerate(results):
        assert [ack_fields(a)["MSA"][1:3] for a in acks] == [["AA", f"C{c}-{i}"] for i in range(n)]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reports)).scalar_one() == 48


@pytest.mark.postgres
def test_waiting_senders_share_commits_and_the_scorecard_is_written_at_close(
    engine: Engine, sender_id: str
) -> None:
    """4 senders, each waiting for its ACK: the listener gathers their frames into shared
    commits; the scorecard counts it tallies in memory are written when it closes."""
    connections, n = 4, 6
    seen = {}

    async def main():
        # no periodic flush during the test: only the one at close
        server = await serve_mllp(engine, "127.0.0.1", 0, resolver=resolver, scorecard_every=3600)
        port = server.sockets[0].getsockname()[1]
        jobs = [
            _exchange(port, [frame(oru(f"G{c}-{i}", filler=f"G{c}-{i}")) for i in range(n)])
            for c in range(connections)
        ]
        acks = await asyncio.gather(*jobs)
        committer = server.committer
        with engine.connect() as conn:
            seen["before"] = conn.execute(select(func.count()).select_from(quality_daily))
            seen["before"] = seen["before"].scalar_one()
        server.close()
        await server.wait_closed()
        committer.close()
        return acks, committer

    results, committer = asyncio.run(main())
    assert all(ack_fields(a)["MSA"][1] == "AA" for acks in results for a in acks)
    assert committer.frames == connections * n and committer.batches < committer.frames
    with engine.connect() as conn:
        checked = conn.execute(select(func.sum(quality_daily.c.checked))).scalar_one()
    if engine.dialect.name == "postgresql":  # tallied (SQLite: written with each message)
        assert seen["before"] == 0
    assert checked and checked > 0


def test_python_hl7_clients_interoperate(engine: Engine, sender_id: str, tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(frame(oru("CLI-1", filler="A")) + frame(oru("CLI-2", filler="B")))

    async def client(port):
        def blocking():
            with MLLPClient("127.0.0.1", port) as c:
                received = c.send_message(hl7.parse(oru("LIB-1", filler="C")))
            out = subprocess.run(
                [str(MLLP_SEND), "-p", str(port), "-f", str(batch), "127.0.0.1"],
                capture_output=True, timeout=30, check=True,
            )  # fmt: skip
            return received, out.stdout

        return await asyncio.to_thread(blocking)

    received, printed = _serve(engine, client)
    assert ack_fields(received.strip(b"\x0b\x1c\r"))["MSA"][1:3] == ["AA", "LIB-1"]
    assert printed.count(b"MSA|AA|CLI-") == 2
    assert sorted(r["control_id"] for r in _rows(engine)) == ["CLI-1", "CLI-2", "LIB-1"]


def test_gb18030_and_custom_delimiters_over_the_socket(engine: Engine, sender_id: str) -> None:
    gb = frame(oru("GB-1", charset="GB 18030-2000", filler="G"), "gb18030")
    custom = frame(oru("CU-1", seps="#$*!@", filler="H"))
    acks = _serve(engine, lambda port: _exchange(port, [gb, custom]))
    assert ack_fields(acks[0], "gb18030")["MSA"][1] == "AA"
    assert acks[1].startswith(b"MSH#$*!@#") and b"MSA#AA#CU-1" in acks[1]


def test_oversize_frame_is_refused_and_the_connection_goes_on(
    engine: Engine, sender_id: str
) -> None:
    big = frame(oru("BIG", obx=[f"OBX|{i}|NM|1-{i}^X||{i}|g" for i in range(1, 400)]))
    acks = _serve(engine, lambda port: _exchange(port, [big, frame(oru("SMALL"))]), max_bytes=4096)
    assert ack_fields(acks[0])["MSA"][1] == "AR" and b"|104^" in acks[0]
    assert ack_fields(acks[1])["MSA"][1] == "AA"
    big_row = next(r for r in _rows(engine) if r["control_id"] == "BIG")
    assert (big_row["size"], len(big_row["raw"]), big_row["truncated"]) == (
        len(big) - 3,
        4096,
        True,
    )


def test_garbage_frames_get_ar_and_cut_off_frame_is_kept(engine: Engine, sender_id: str) -> None:
    async def client(port):
        acks = await _exchange(port, [frame(b"\x00\xff\xfe garbage"), frame(b"PID|1")])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0b" + oru("CUT").encode()[:60])  # never ends: no FS CR
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        return acks

    acks = _serve(engine, client)
    assert [ack_fields(a)["MSA"][1] for a in acks] == ["AR", "AR"]
    assert b"binary data" in acks[0]
    rows = _wait_rows(engine, 3)
    cut = next(r for r in rows if r["raw"].startswith(b"MSH"))
    assert cut["status"] == "failed" and "not terminated" in cut["error"] and cut["ack"] is None
    assert cut["raw"] == oru("CUT").encode()[:60]


def _frames(*chunks: bytes, max_bytes: int = 100) -> list[Frame]:
    async def collect():
        reader = asyncio.StreamReader()
        for c in chunks:
            reader.feed_data(c)
        reader.feed_eof()
        return [f async for f in read_frames(reader, max_bytes)]

    return asyncio.run(collect())


def test_frames_split_anywhere_are_reassembled() -> None:
    data = b"\x0bMSH|one\x1c\r\x0bMSH|two\x1c\r"
    for cut in range(1, len(data)):
        got = _frames(data[:cut], data[cut:])
        assert [(f.kind, f.data) for f in got] == [("message", b"MSH|one"), ("message", b"MSH|two")]


def test_frame_reader_reports_oversize_stray_and_restarted_frames() -> None:
    big = b"\x0b" + b"x" * 250 + b"\x1c"
    got = _frames(b"junk\x0bMSH|a\x1c\r", big[:120], big[120:], b"\r\x0bMSH|half\x0bMSH|b\x1c\r")
    assert [(f.kind, f.size) for f in got] == [
        ("stray", 4), ("message", 5), ("oversize", 250), ("truncated", 8), ("message", 5),
    ]  # fmt: skip
    assert got[2].data == b"x" * 100
