"""Batch de-duplication with splink: parameters estimated, stored, used online; duplicates."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from rhip.identity import batch, linkage, repo, service
from rhip.identity.models import parameters, persons
from rhip.identity.scoring import MatchParameters
from rhip.kernel.crypto import IdentifierVault


@pytest.mark.postgres
def test_dedupe_estimates_parameters_the_online_matcher_uses(
    engine: Engine, vault: IdentifierVault, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, regs = population
    # a deliberately timid matcher: nothing links without a resident ID, so duplicates remain
    timid = dataclasses.replace(MatchParameters.default(), auto_link=1e9, review=1e9)
    service.register_many(engine, vault, regs, params=timid)
    report = batch.dedupe_index(engine, merge=False)
    assert report.records == len(regs) and report.pairs > 0
    assert report.duplicate_clusters > 10 and report.reviews == report.duplicate_clusters
    with engine.connect() as conn:
        stored = repo.load_parameters(conn)
        assert conn.execute(select(func.count()).select_from(parameters)).scalar_one() == 1
    assert stored.source == "splink" and stored.mu != MatchParameters.default().mu
    assert stored.weights["name"]["exact"] > 5 > stored.weights["name"]["else"]
    # the online path now reads them
    with engine.connect() as conn:
        matcher, _, _ = repo.prime_matcher(conn, repo.load_parameters(conn))
    assert matcher.params.source == "splink"
    # reviews queued by the batch close like any other
    first = linkage.open_reviews(engine, 1)[0]
    linkage.decide_review(engine, first["id"], link=True, actor="tester")
    with engine.connect() as conn:
        status = conn.execute(
            select(persons.c.status).where(persons.c.id == first["provisional_person_id"])
        ).scalar_one()
    assert status == "merged"


def test_dedupe_merges_when_asked(
    engine: Engine, vault: IdentifierVault, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, regs = population
    timid = dataclasses.replace(MatchParameters.default(), auto_link=1e9, review=1e9)
    service.register_many(engine, vault, regs, params=timid)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).where(persons.c.status == "active")).scalar_one()
    report = batch.dedupe_index(engine, merge=True)
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).where(persons.c.status == "active")).scalar_one()
    assert report.merged > 10 and after == before - report.merged
    assert after >= regs["true_person"].nunique() - 2
