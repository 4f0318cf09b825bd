"""Merge, unmerge (合并/拆分) and the review queue (人工审核) of golden records, with history.

A merge moves every registration of the subsumed record to the survivor and marks the subsumed
record ``merged`` (``merged_into`` → survivor); the history row lists the registrations moved, so
an unmerge puts exactly those back and reactivates the subsumed record. Nothing is deleted.
A review decision either merges the provisional record into the candidate (link) or makes the
provisional record an ordinary active one (reject).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, Engine, select, update

from rhip.identity.models import history, persons, registrations, reviews
from rhip.kernel import clock
from rhip.kernel.errors import Conflict, InvalidInput, NotFound

P, R, H, V = persons.c, registrations.c, history.c, reviews.c


def _person(conn: Connection, person_id: str, expression: str):
    row = conn.execute(select(persons).where(P.id == person_id)).mappings().first()
    if row is None:
        raise NotFound(f"Patient/{person_id} does not exist", expression=expression)
    return row


def merge(
    engine: Engine,
    survivor_id: str,
    subsumed_id: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    force: bool = False,
) -> int:
    """Merge ``subsumed_id`` into ``survivor_id``; returns the history id (for unmerge).

    Refused (Conflict) when both carry different resident IDs, unless ``force``.
    """
    if survivor_id == subsumed_id:
        raise InvalidInput("a record cannot be merged into itself", expression="target-patient")
    with engine.begin() as conn:
        survivor = _person(conn, survivor_id, "target-patient")
        subsumed = _person(conn, subsumed_id, "source-patient")
        for row, expr in ((survivor, "target-patient"), (subsumed, "source-patient")):
            if row["status"] == "merged":
                raise Conflict(f"Patient/{row['id']} is already merged into {row['merged_into']}",
                               expression=expr)  # fmt: skip
        rids = {survivor["rid_hash"], subsumed["rid_hash"]} - {None}
        if len(rids) > 1 and not force:
            raise Conflict(
                "the two records carry different resident IDs", expression="source-patient"
            )
        moved = conn.execute(select(R.id).where(R.person_id == subsumed_id)).scalars().all()
        now = clock.now()
        conn.execute(
            update(registrations).where(R.person_id == subsumed_id).values(person_id=survivor_id)
        )
        conn.execute(
            update(persons).where(P.id == subsumed_id)
            .values(status="merged", merged_into=survivor_id, updated_at=now)
        )  # fmt: skip
        # earlier merges into the subsumed record now point at the survivor (one hop to follow)
        conn.execute(
            update(persons).where(P.merged_into == subsumed_id).values(merged_into=survivor_id)
        )
        refresh_golden(conn, survivor_id)
        return conn.execute(
            history.insert().values(
                action="merge", survivor_id=survivor_id, subsumed_id=subsumed_id,
                registration_ids=json.dumps(list(moved)), reason=reason, actor=actor, at=now,
            )
        ).inserted_primary_key[0]  # fmt: skip


def unmerge(engine: Engine, subsumed_id: str, *, actor: str | None = None) -> int:
    """Undo the latest merge of ``subsumed_id``: its registrations go back, it is active again."""
    with engine.begin() as conn:
        last = conn.execute(
            select(history)
            .where(H.subsumed_id == subsumed_id, H.action == "merge", H.undone_by.is_(None))
            .order_by(H.id.desc()).limit(1)
        ).mappings().first()  # fmt: skip
        if last is None:
            raise NotFound(
                f"Patient/{subsumed_id} has no merge to undo", expression="source-patient"
            )
        survivor_id = (
            _person(conn, subsumed_id, "source-patient")["merged_into"] or last["survivor_id"]
        )
        moved = json.loads(last["registration_ids"])
        now = clock.now()
        if moved:
            conn.execute(
                update(registrations).where(R.id.in_(moved), R.person_id == survivor_id)
                .values(person_id=subsumed_id)
            )  # fmt: skip
        conn.execute(
            update(persons).where(P.id == subsumed_id)
            .values(status="active", merged_into=None, updated_at=now)
        )  # fmt: skip
        refresh_golden(conn, survivor_id)
        refresh_golden(conn, subsumed_id)
        undo = conn.execute(
            history.insert().values(
                action="unmerge", survivor_id=survivor_id, subsumed_id=subsumed_id,
                registration_ids=last["registration_ids"], actor=actor, at=now,
            )
        ).inserted_primary_key[0]  # fmt: skip
        conn.execute(update(history).where(H.id == last["id"]).values(undone_by=undo))
        return undo


def refresh_golden(conn: Connection, person_id: str) -> None:
    """Redraw a golden record from its registrations: first with a resident ID, else first."""
    row = conn.execute(
        select(R.id, R.name, R.name_pinyin, R.gender, R.birth_date, R.phone, R.address,
               R.district_code, R.rid_hash)
        .where(R.person_id == person_id)
        .order_by(R.rid_hash.is_(None), R.registered_at, R.id).limit(1)
    ).mappings().first()  # fmt: skip
    if row is None:
        return
    values = {k: row[k] for k in row if k != "id"}
    conn.execute(
        update(persons).where(P.id == person_id)
        .values(**values, golden_registration_id=row["id"], updated_at=clock.now())
    )  # fmt: skip


def history_of(engine: Engine, person_id: str) -> list[dict]:
    """Merges and unmerges this record took part in, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(history).where((H.survivor_id == person_id) | (H.subsumed_id == person_id))
            .order_by(H.id)
        ).mappings().all()  # fmt: skip
    return [dict(r) for r in rows]


def review_for_registration(engine: Engine, registration_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(V.id).where(V.registration_id == registration_id)).scalar()


def open_reviews(engine: Engine, limit: int = 100) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(reviews).where(V.status == "open").order_by(V.created_at, V.id).limit(limit)
        ).mappings().all()  # fmt: skip
    return [dict(r) for r in rows]


def decide_review(engine: Engine, review_id: str, *, link: bool, actor: str | None = None) -> str:
    """Close a review item; returns the person the registration ends up in."""
    with engine.connect() as conn:
        item = conn.execute(select(reviews).where(V.id == review_id)).mappings().first()
        if item is None:
            raise NotFound(f"review {review_id} does not exist", expression="review")
        if item["status"] != "open":
            raise Conflict(f"review {review_id} is already {item['status']}", expression="review")
        target = item["candidate_person_id"]
        while True:  # the candidate may have been merged meanwhile
            row = _person(conn, target, "candidate")
            if row["status"] != "merged":
                break
            target = row["merged_into"]
    provisional = item["provisional_person_id"]
    if link and target != provisional:
        merge(engine, target, provisional, reason=f"review {review_id}", actor=actor)
    result = target if link else provisional
    with engine.begin() as conn:
        if not link:
            conn.execute(
                update(persons)
                .where(P.id == provisional, P.status == "provisional")
                .values(status="active")
            )
        conn.execute(
            update(reviews)
            .where(V.id == review_id)
            .values(
                status="linked" if link else "rejected", decided_at=clock.now(), decided_by=actor
            )
        )
    return result
