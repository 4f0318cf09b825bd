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
