"""The ``rhip`` command: help lists every command; ``db upgrade`` migrates the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from rhip.cli.main import _mount, app
from rhip.store import make_engine

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def mounted() -> None:
    _mount()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "db", "synth", "mpi", "index", "institution", "inbox"):
        assert command in result.output, command


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("RHIP_DATABASE_URL", url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at revision" in result.output
    eng = make_engine(url)
    assert {"institutions", "districts"} <= set(inspect(eng).get_table_names())
    eng.dispose()


def test_demo_synthesizes_then_serves_http_and_mllp(tmp_path: Path) -> None:
    """``rhip demo`` end to end in a subprocess: a city with reports, then both listeners."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    http_port, mllp_port = free_port(), free_port()
    env = {
        **os.environ,
        "RHIP_VAR_DIR": str(tmp_path / "var"),
        "RHIP_DATABASE_URL": "",
        "RHIP_PORT": str(http_port),
        "RHIP_MLLP_PORT": str(mllp_port),
        "RHIP_ENV": "dev",
    }
    cmd = [sys.executable, "-c", "from rhip.cli import main; main()", "demo", "--residents", "60"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rhip demo did not start in time"
            time.sleep(0.5)
        token = httpx.post(
            f"http://127.0.0.1:{http_port}/api/auth/token",
            data={"username": "demo-operator", "password": "rhip-demo-operator"},
        )
        assert token.status_code == 200  # the demo accounts exist
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        coverage = httpx.get(f"http://127.0.0.1:{http_port}/api/registry/coverage", headers=headers)
        assert coverage.json()["total"] > 2000
        with socket.create_connection(("127.0.0.1", mllp_port), timeout=5):
            pass  # the MLLP listener is up beside HTTP
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "rhip listening on" in out and f"MLLP 127.0.0.1:{mllp_port}" in out
    assert "reports:" in out and "demo accounts" in out
