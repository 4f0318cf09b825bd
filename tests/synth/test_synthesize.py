"""``synthesize``: the city and residents land in the database once, the truth is kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from rhip.exchange.models import reports
from rhip.identity.models import registrations
from rhip.kernel.errors import Conflict, Forbidden
from rhip.kernel.settings import Settings
from rhip.registry.models import districts, institutions
from rhip.synth import synthesize
from rhip.synth.city import COUNTS, build_city
from rhip.synth.cli import synth


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (districts, institutions, registrations)
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, env="test")


@pytest.mark.postgres
def test_writes_city_and_registrations_and_keeps_truth(engine: Engine, settings) -> None:
    seen: list[tuple[str, int, int]] = []
    summary = synthesize(
        engine, settings, residents=150, seed=3, progress=lambda *a: seen.append(a)
    )
    n_regs = summary.registrations
    assert _counts(engine) == (9, sum(COUNTS.values()), n_regs)
    assert summary.city_written and summary.residents_written and summary.residents == 150
    assert n_regs > 150  # several registrations per resident
    assert {s for s, _, _ in seen} == {"city", "residents", "registrations", "reports"}
    assert seen[-1][1] == seen[-1][2]  # the last stage finished
    # the report stream went through the platform's own ingest, versions included
    stream = summary.stream
    assert stream is not None and stream.messages >= 300
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    assert stored == stream.stored > 0.95 * stream.messages
    assert {a.username for a in summary.accounts} >= {"demo-doctor", "demo-patient"}
    truth = pd.read_csv(summary.truth_path)
    assert len(truth) == n_regs and truth["true_person"].nunique() <= 150
    assert summary.quality is not None and summary.quality.recall > 0.8
    assert summary.quality.precision > 0.9


def test_rerun_keeps_what_is_there(engine: Engine, settings) -> None:
    first = synthesize(engine, settings, residents=50, seed=3)
    again = synthesize(engine, settings, residents=50, seed=3)
    assert not again.city_written and not again.residents_written
    assert _counts(engine) == (9, sum(COUNTS.values()), first.registrations)


def test_other_seed_on_a_populated_database_is_refused(engine: Engine, settings) -> None:
    synthesize(engine, settings, residents=0, seed=3)
    before = _counts(engine)
    with pytest.raises(Conflict, match="--reset"):
        synthesize(engine, settings, residents=20, seed=4)
    assert _counts(engine) == before


@pytest.mark.postgres
def test_reset_starts_again(engine: Engine, settings) -> None:
    synthesize(engine, settings, residents=30, seed=3)
    summary = synthesize(engine, settings, residents=40, seed=4, reset=True)
    assert summary.city_written and summary.residents == 40
    assert _counts(engine) == (9, sum(COUNTS.values()), summary.registrations)
    with engine.connect() as conn:
        ids = set(conn.execute(select(institutions.c.id)).scalars())
    assert ids == set(build_city(4).institutions["id"])


def test_reset_is_refused_in_production(engine: Engine, tmp_path: Path) -> None:
    prod = Settings(var_dir=tmp_path, env="prod", secret_key="a-real-secret")
    with pytest.raises(Forbidden):
        synthesize(engine, prod, residents=0, seed=1, reset=True)


def test_cli_runs_twice_without_duplicating(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RHIP_DATABASE_URL", f"sqlite:///{tmp_path / 'synth.db'}")
    monkeypatch.setenv("RHIP_VAR_DIR", str(tmp_path))
    app = typer.Typer()
    app.command()(synth)
    runner = CliRunner()
    first = runner.invoke(app, ["--residents", "30", "--seed", "5"])
    assert first.exit_code == 0, first.output
    assert (
        f"{sum(COUNTS.values())} institutions (written)" in first.output
        and "precision" in first.output
    )
    again = runner.invoke(app, ["--residents", "30", "--seed", "5"])
    assert again.exit_code == 0 and "already there, kept" in again.output
    other = runner.invoke(app, ["--residents", "30", "--seed", "6"])
    assert other.exit_code == 2 and "--reset" in other.output
    bad = runner.invoke(app, ["--residents", "-1"])
    assert bad.exit_code == 2 and "--residents" in bad.output
