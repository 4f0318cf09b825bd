"""The batch pass over the stored index (``rhip mpi dedupe``): splink, parameters, duplicates.

Reads every live registration's match columns, lets ``dedupe.run`` estimate parameters and
cluster, stores the parameters (the online matcher reads the newest), and turns each cluster that
spans several golden records into review items — or merges, when asked and no two resident IDs
disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, select

from rhip.identity import dedupe, linkage
from rhip.identity.models import parameters, persons, registrations, reviews
from rhip.identity.scoring import MatchParameters
from rhip.identity.writer import new_ids
from rhip.kernel import clock
from rhip.kernel.errors import Conflict

R, P = registrations.c, persons.c


@dataclass
class DedupeReport:
    records: int
    pairs: int
    duplicate_clusters: int
    reviews: int
    merged: int
    parameters: MatchParameters


def load_frame(engine: Engine) -> pd.DataFrame:
    """Live registrations in the shape ``dedupe.run`` takes (plus person and rid)."""
    query = (
        select(
            R.id.label("unique_id"), R.person_id, R.name_folded, R.name_pinyin,
            R.birth_iso.label("birth_date"), R.sex, R.phone_key.label("phone"), R.address_key,
            R.district_code.label("district"), R.rid_hash, R.registered_at,
        )
        .join(persons, P.id == R.person_id)
        .where(P.status.in_(("active", "provisional")))
        .order_by(R.registered_at, R.id)
    )  # fmt: skip
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def store_parameters(engine: Engine, params: MatchParameters, records: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            parameters.insert().values(
                source=params.source,
                params=params.to_json(),
                records=records,
                created_at=clock.now(),
            )
        )


def dedupe_index(engine: Engine, *, merge: bool = False, threshold: float = 0.95) -> DedupeReport:
    frame = load_frame(engine)
    if len(frame) < 2:
        return DedupeReport(len(frame), 0, 0, 0, 0, MatchParameters.default())
    result = dedupe.run(frame, threshold=threshold)
    store_parameters(engine, result.parameters, len(frame))
    joined = frame.merge(result.clusters, on="unique_id")
    spans = joined.groupby("cluster_id")["person_id"].nunique()
    multi = joined[joined["cluster_id"].isin(spans[spans > 1].index)]
    queued = merged = 0
    for _, cluster in multi.groupby("cluster_id"):
        survivor, others = _survivor(cluster)
        for person_id, rows in others:
            if merge:
                try:
                    linkage.merge(
                        engine, survivor, person_id, reason="splink dedupe", actor="dedupe"
                    )
                    merged += 1
                    continue
                except Conflict:
                    pass  # different resident IDs: a person decides
            _queue(engine, rows.iloc[0], survivor, cluster, result.parameters)
            queued += 1
    return DedupeReport(len(frame), result.pairs, int((spans > 1).sum()), queued, merged,
                        result.parameters)  # fmt: skip


def _survivor(cluster: pd.DataFrame) -> tuple[str, list[tuple[str, pd.DataFrame]]]:
    """The golden record with a resident ID and most registrations survives."""
    by_person = cluster.groupby("person_id")
    rank = by_person.agg(has_rid=("rid_hash", lambda s: s.notna().any()), n=("unique_id", "size"))
    survivor = rank.sort_values(["has_rid", "n"], ascending=False).index[0]
    return survivor, [(pid, rows) for pid, rows in by_person if pid != survivor]


def _queue(
    engine: Engine, row: pd.Series, survivor: str, cluster: pd.DataFrame, params: MatchParameters
) -> None:
    cols = ["name_folded", "name_pinyin", "birth_date", "sex", "phone", "address_key", "district"]
    target = cluster[cluster["person_id"] == survivor].iloc[0]

    def rec(r: pd.Series) -> tuple:
        return tuple("" if pd.isna(r[c]) else r[c] for c in cols)

    weight = params.weight(rec(row), rec(target))
    with engine.begin() as conn:
        already = conn.execute(
            select(reviews.c.id).where(
                reviews.c.provisional_person_id == row["person_id"], reviews.c.status == "open"
            )
        ).first()
        if already:
            return
        conn.execute(
            reviews.insert().values(
                id=new_ids(1)[0], registration_id=row["unique_id"],
                provisional_person_id=row["person_id"], candidate_person_id=survivor,
                weight=float(weight), status="open",
                created_at=dt.datetime.now(dt.UTC), decided_at=None, decided_by=None,
            )
        )  # fmt: skip
