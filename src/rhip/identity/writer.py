"""Rows for a batch of decided registrations, written set-based (COPY / executemany) in chunks.

The matcher decides in memory, one registration after another; this module turns the decisions
into table rows with numpy/pandas columns (no object per row) and writes them chunk by chunk, each
chunk in its own transaction: persons first (their first registration is in the chunk), then
registrations, identifiers and review items. A crash mid-load leaves whole chunks; re-running the
load skips registrations whose MRN is already stored, so it resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, update

from rhip.identity.intake import DOCUMENT_COLUMNS
from rhip.identity.models import identifiers, persons, registrations, reviews
from rhip.kernel import clock, systems
from rhip.kernel.crypto import IdentifierVault
from rhip.store import bulk_insert

Progress = Callable[[int, int], None]


@dataclass
class Decided:
    """A prepared batch (``intake.Batch.frame``) with the matcher's decision per row."""

    frame: pd.DataFrame  # rows in arrival order, with columns person, outcome, weight, candidate
    person_ids: list[str]  # matcher person index → id (existing ones first)
    n_existing_persons: int
    golden: list[int]  # matcher person → golden registration (matcher index)
    n_existing_regs: int


def as_date(iso: str | None) -> dt.date | None:
    return dt.date.fromisoformat(iso) if iso else None


def new_ids(n: int) -> np.ndarray:
    return np.array([uuid.uuid4().hex for _ in range(n)], dtype=object)


def _iso_or_none(series: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(series.where(series != ""), format="%Y-%m-%d", errors="coerce")
    return series.where(parsed.notna(), None)


def registration_rows(d: Decided) -> pd.DataFrame:
    f = d.frame
    mrn_system = (systems.MRN_PREFIX + f["credit_code"].astype(str)) if "credit_code" in f else None
    at = f["registered_at"] if "registered_at" in f else pd.Series([clock.now()] * len(f))
    person_ids = np.asarray(d.person_ids, dtype=object)
    phone = f["phone"].where(f["phone"] != "", None)  # normalised by intake (digits, no +86)
    return pd.DataFrame(
        {
            "id": f["registration_id"],
            "person_id": person_ids[f["person"].to_numpy()],
            "institution_id": f.get("institution_id"),
            "mrn_system": mrn_system.where(f["mrn"].notna(), None) if "mrn" in f else None,
            "mrn": f.get("mrn"),
            "name": f.get("name"),
            "gender": f["gender"].where(
                f["gender"].isin(["male", "female", "other", "unknown"]), None
            ),
            "birth_date": _iso_or_none(f["birth_date"].astype(object).fillna("")),
            "phone": phone,
            "address": f.get("address"),
            "district_code": f["district"].where(f["district"] != "", None),
            "name_folded": f["name_folded"],
            "name_pinyin": f["name_pinyin"],
            "birth_iso": f["birth_date"].where(f["birth_date"] != "", None),
            "sex": f["sex"].where(f["sex"] != "", None),
            "phone_key": phone,
            "address_key": f["address_key"].where(f["address_key"] != "", None),
            "rid_hash": f["rid_hash"].where(f["rid_hash"] != "", None),
            "outcome": f["outcome"],
            "match_weight": f["weight"],
            "registered_at": pd.to_datetime(at, utc=True),
        }
    )


def identifier_rows(f: pd.DataFrame, vault: IdentifierVault) -> pd.DataFrame:
    """One row per identifier: resident ID and sensitive documents hashed + encrypted, MRN clear."""
    parts = []
    rid = f["resident_id"]
    has = rid.notna()
    if has.any():
        values = rid[has]
        parts.append(_sensitive(f.loc[has, "registration_id"], systems.RESIDENT_ID, "NNCHN",
                                values, f.loc[has, "rid_hash"], vault))  # fmt: skip
    if "mrn" in f:
        has = f["mrn"].notna()
        parts.append(pd.DataFrame({
            "registration_id": f.loc[has, "registration_id"],
            "system": systems.MRN_PREFIX + f.loc[has, "credit_code"].astype(str),
            "type_code": "MR", "value": f.loc[has, "mrn"].astype(str),
            "value_hash": None, "value_enc": None,
        }))  # fmt: skip
    for col, system in DOCUMENT_COLUMNS.items():
        if col not in f:
            continue
        has = f[col].notna()
        values = f.loc[has, col].astype(str)
        if system in systems.SENSITIVE:
            hashes = values.map(lambda v, s=system: vault.hash(s, v))
            parts.append(
                _sensitive(f.loc[has, "registration_id"], system, None, values, hashes, vault)
            )
        else:
            parts.append(pd.DataFrame({
                "registration_id": f.loc[has, "registration_id"], "system": system,
                "type_code": None, "value": values, "value_hash": None, "value_enc": None,
            }))  # fmt: skip
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _sensitive(reg_ids, system, type_code, values, hashes, vault) -> pd.DataFrame:
    encrypted = values.map({v: vault.encrypt(v) for v in pd.unique(values)})
    return pd.DataFrame({
        "registration_id": reg_ids, "system": system, "type_code": type_code,
        "value": None, "value_hash": hashes, "value_enc": encrypted,
    })  # fmt: skip


def person_rows(d: Decided, regs: pd.DataFrame, new_persons: np.ndarray) -> pd.DataFrame:
    """Golden records of ``new_persons`` (matcher indices), drawn from their golden registration."""
    now = clock.now()
    golden = np.asarray(d.golden)[new_persons] - d.n_existing_regs
    src = regs.iloc[golden].reset_index(drop=True)
    first_outcome = d.frame.groupby("person")["outcome"].first()
    status = np.where(
        first_outcome.reindex(new_persons).to_numpy() == "review", "provisional", "active"
    )
    return pd.DataFrame(
        {
            "id": np.asarray(d.person_ids, dtype=object)[new_persons],
            "status": status,
            "merged_into": None,
            "name": src["name"], "name_pinyin": src["name_pinyin"], "gender": src["gender"],
            "birth_date": src["birth_date"], "phone": src["phone"], "address": src["address"],
            "district_code": src["district_code"], "rid_hash": src["rid_hash"],
            "golden_registration_id": src["id"],
            "created_at": now, "updated_at": now,
        }
    )  # fmt: skip


def write(
    engine: Engine, d: Decided, vault: IdentifierVault, chunk: int, progress: Progress | None
) -> None:
    """Write the decided batch chunk by chunk (one transaction each)."""
    regs = registration_rows(d)
    person_of = d.frame["person"].to_numpy()
    first_reg = d.frame.reset_index().groupby("person")["index"].first()
    first_reg = first_reg[first_reg.index >= d.n_existing_persons]
    people = person_rows(d, regs, first_reg.index.to_numpy())
    people_chunk = first_reg.to_numpy() // chunk
    idents = identifier_rows(d.frame, vault)
    ident_chunk = pd.Series(np.arange(len(regs)) // chunk, index=regs["id"])
    review_rows = _review_rows(d, regs, chunk)
    total = len(regs)
    for k, start in enumerate(range(0, total, chunk)):
        with engine.begin() as conn:
            bulk_insert(conn, persons, people[people_chunk == k])
            bulk_insert(conn, registrations, regs.iloc[start : start + chunk])
            if len(idents):
                mine = ident_chunk.reindex(idents["registration_id"]).to_numpy() == k
                bulk_insert(conn, identifiers, idents[mine])
            if len(review_rows):
                bulk_insert(
                    conn, reviews, review_rows[review_rows["_chunk"] == k].drop(columns="_chunk")
                )
        if progress:
            progress(min(start + chunk, total), total)
    _update_golden(engine, d, regs, person_of)


def _review_rows(d: Decided, regs: pd.DataFrame, chunk: int) -> pd.DataFrame:
    f = d.frame
    sel = np.flatnonzero(f["outcome"].to_numpy() == "review")
    if not len(sel):
        return pd.DataFrame()
    ids = np.asarray(d.person_ids, dtype=object)
    return pd.DataFrame(
        {
            "id": new_ids(len(sel)),
            "registration_id": regs["id"].to_numpy()[sel],
            "provisional_person_id": ids[f["person"].to_numpy()[sel]],
            "candidate_person_id": ids[f["candidate"].to_numpy()[sel].astype(int)],
            "weight": f["weight"].to_numpy()[sel],
            "status": "open",
            "created_at": clock.now(),
            "decided_at": None,
            "decided_by": None,
            "_chunk": sel // chunk,
        }
    )


def _update_golden(engine: Engine, d: Decided, regs: pd.DataFrame, person_of: np.ndarray) -> None:
    """Existing persons whose golden source is now a registration of this batch (an ID arrived)."""
    golden = np.asarray(d.golden[: d.n_existing_persons])
    changed = np.flatnonzero(golden >= d.n_existing_regs)
    if not len(changed):
        return
    src = regs.iloc[golden[changed] - d.n_existing_regs]
    stmt = (
        update(persons)
        .where(persons.c.id == bindparam("pid"))
        .values(
            name=bindparam("n"), name_pinyin=bindparam("np"), gender=bindparam("g"),
            birth_date=bindparam("b"), phone=bindparam("ph"), address=bindparam("a"),
            district_code=bindparam("dc"), rid_hash=bindparam("rh"),
            golden_registration_id=bindparam("gr"), updated_at=bindparam("u"),
        )
    )  # fmt: skip
    now = clock.now()
    rows = [
        {"pid": d.person_ids[p], "n": r.name, "np": r.name_pinyin, "g": r.gender,
         "b": as_date(r.birth_date), "ph": r.phone, "a": r.address, "dc": r.district_code,
         "rh": r.rid_hash, "gr": r.id, "u": now}
        for p, r in zip(changed, src.itertuples(index=False), strict=True)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(stmt, rows)
