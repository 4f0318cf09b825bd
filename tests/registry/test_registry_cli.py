"""``rhip institution add|list|coverage``: errors name the option, nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rhip.registry.cli import app

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RHIP_DATABASE_URL", url)
    return url


def _add(code: str, *extra: str):
    args = ["add", "--credit-code", code, "--name", "深圳市南山区人民医院", "--type",
            "public_hospital", "--district", "440305", *extra]  # fmt: skip
    return runner.invoke(app, args)


def test_add_list_and_coverage(database: str, credit_code) -> None:
    result = _add(credit_code(1), "--grade", "三级甲等", "--status", "connected", "--feeds", "lab")
    assert result.exit_code == 0, result.output
    assert "南山区" in result.output
    listed = runner.invoke(app, ["list", "--district", "440305"])
    assert listed.exit_code == 0 and "三级甲等" in listed.output  # the row (names wrap)
    assert "1 of 1" in listed.output
    cov = runner.invoke(app, ["coverage"])
    assert cov.exit_code == 0 and "1 of 1 connected" in cov.output


def test_bad_values_name_their_options_and_write_nothing(database: str, credit_code) -> None:
    result = _add("91440300MA5ABCDE10", "--status", "online", "--allow-cidrs", "10.0.0.0/33")
    assert result.exit_code == 2
    for option in ("--credit-code", "--status", "--allow-cidrs"):
        assert option in result.output, option
    assert "0 of 0" in runner.invoke(app, ["list"]).output
