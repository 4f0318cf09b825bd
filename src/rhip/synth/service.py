"""``rhip synth``: write the synthetic model city, its residents and their registrations (合成数据).

Order: districts and institutions (``rhip.synth.city``, one transaction), residents and noisy
registrations (``rhip.synth.people``), then the MPI links them (``rhip.identity.register_many``).
The true person behind every registration is written next to the database (``truth-<seed>.csv``
under ``settings.var_dir/synth``) and the MPI's pairwise precision/recall against it is reported.

Re-running is safe: a city already in place is kept, and residents are not added twice. ``reset``
empties every rhip table first (refused in production).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, Table, delete, func, select

from rhip.identity import service as identity
from rhip.identity.models import registrations as mpi_registrations
from rhip.identity.quality import PairwiseScores, pairwise_scores
from rhip.identity.schemas import RegisterStats
from rhip.kernel import clock
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import Conflict, Forbidden, InvalidInput
from rhip.kernel.settings import Settings
from rhip.registry.models import districts, institutions
from rhip.schema import load_all
from rhip.security.service import DemoAccount
from rhip.store import bulk_insert
from rhip.synth import people, setup, stream
from rhip.synth.city import City, build_city

# progress(stage, done, total): stages are "city", "residents", "registrations"
Progress = Callable[[str, int, int], None]


@dataclass
class SynthSummary:
    """What a run did. ``city_written``/``residents_written`` are False when kept from before."""

    city_written: bool
    residents_written: bool
    districts: int
    institutions: int
    residents: int = 0
    registrations: int = 0
    register_stats: RegisterStats | None = None
    truth_path: Path | None = None
    quality: PairwiseScores | None = None
    code_maps: int = 0  # starter terminology rows loaded by this run
    accounts: list[DemoAccount] = field(default_factory=list)
    stream: stream.StreamSummary | None = None
    seconds: float = 0.0


def synthesize(
    engine: Engine,
    settings: Settings,
    residents: int = 2000,
    seed: int = 42,
    progress: Progress | None = None,
    *,
    reset: bool = False,
    reports: int | None = None,
) -> SynthSummary:
    """Generate the city for ``seed`` with ``residents`` residents into ``engine``'s database."""
    if residents < 0:
        raise InvalidInput(f"residents must be 0 or more, got {residents}", expression="residents")
    started = time.perf_counter()
    report = progress or (lambda _stage, _done, _total: None)
    if reset:
        reset_database(engine, settings)
    city = build_city(seed)
    city_written = _write_city(engine, city, report)
    summary = SynthSummary(city_written, False, len(city.districts), len(city.institutions))
    summary.code_maps = setup.load_starter_terminology(engine)
    if _count(engine, mpi_registrations) == 0 and residents > 0:
        registrations_df = _write_people(engine, settings, city, residents, seed, report, summary)
        n_reports = 2 * residents if reports is None else reports
        if n_reports > 0:
            summary.stream = stream.ingest_reports(
                engine, settings, registrations_df, city.institutions, n_reports, seed, report
            )
    summary.accounts = setup.demo_accounts(engine, settings.env)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _write_city(engine: Engine, city: City, report: Progress) -> bool:
    """Write the city unless this seed's city is already there; refuse to mix with another."""
    total = len(city.institutions)
    with engine.begin() as conn:
        stored = set(conn.execute(select(institutions.c.id)).scalars())
        if stored and set(city.institutions["id"]) <= stored:
            report("city", total, total)
            return False
        if stored:
            raise Conflict(
                f"the database already holds {len(stored)} institutions that are not this seed's "
                "city; run again with reset (rhip synth --reset) to start from an empty database",
                expression="seed",
            )
        known = set(conn.execute(select(districts.c.code)).scalars())
        bulk_insert(conn, districts, city.districts[~city.districts["code"].isin(known)])
        now = clock.now()
        bulk_insert(conn, institutions, city.institutions.assign(created_at=now, updated_at=now))
    report("city", total, total)
    return True


def _write_people(
    engine: Engine,
    settings: Settings,
    city: City,
    n: int,
    seed: int,
    report: Progress,
    summary: SynthSummary,
) -> pd.DataFrame:
    report("residents", 0, n)
    residents_df, registrations_df = people.generate(n, city.institutions, seed)
    report("residents", n, n)
    vault = IdentifierVault(settings.secret_key)
    stats = identity.register_many(
        engine,
        vault,
        registrations_df,
        progress=lambda done, total: report("registrations", done, total),
    )
    summary.residents_written = True
    summary.residents = len(residents_df)
    summary.registrations = len(registrations_df)
    summary.register_stats = stats
    summary.truth_path = _write_truth(settings, registrations_df, seed)
    summary.quality = matching_quality(engine, registrations_df)
    return registrations_df


def _write_truth(settings: Settings, registrations_df: pd.DataFrame, seed: int) -> Path:
    """The true person of every registration, keyed as the MPI keys it (institution, MRN)."""
    folder = Path(settings.var_dir) / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"truth-{seed}.csv"
    columns = ["institution_id", "mrn", "true_person", "noise"]
    registrations_df[columns].to_csv(path, index=False)
    return path


def matching_quality(engine: Engine, truth: pd.DataFrame) -> PairwiseScores:
    """Pairwise precision/recall of the MPI's golden records against the true persons."""
    r = mpi_registrations
    with engine.connect() as conn:
        rows = conn.execute(select(r.c.institution_id, r.c.mrn, r.c.person_id)).all()
    linked = pd.DataFrame(rows, columns=["institution_id", "mrn", "person_id"])
    joined = truth[["institution_id", "mrn", "true_person"]].merge(
        linked, on=["institution_id", "mrn"], how="inner"
    )
    return pairwise_scores(joined["true_person"], joined["person_id"])


def reset_database(engine: Engine, settings: Settings) -> None:
    """Delete every row of every rhip table (children first); the schema stays. Not in prod."""
    if settings.env == "prod":
        raise Forbidden(
            "reset deletes all data and is refused when RHIP_ENV=prod", expression="reset"
        )
    with engine.begin() as conn:
        for table in reversed(load_all().sorted_tables):
            if table is institutions:  # self-reference (part_of): children first
                conn.execute(delete(table).where(table.c.part_of.is_not(None)))
            conn.execute(delete(table))


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()
