"""Intake (接收) of a batch of registrations: validate, normalise and hash, set-based.

Turns a registrations DataFrame (the shape ``rhip.synth.people.generate`` returns, or a CSV of the
same columns) into what the online matcher consumes: one match record, resident-ID hash and
document keys per row. Resident IDs are checked with numpy (check digit, calendar date, province)
so a batch of 100,000 needs no per-row validator call; an invalid ID is dropped from matching
(counted, never stored in clear) rather than failing the batch. The ID's birth date and sex fill
the registration's when those are missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhip.identity.normalise import MATCH_COLUMNS, prepare
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.regions import province_name

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = np.array(list("10X98765432"))
# optional DataFrame columns carrying other identifiers, and their systems
DOCUMENT_COLUMNS = {
    "passport": systems.PASSPORT,
    "hkmo_permit": systems.HKMO_PERMIT,
    "tw_permit": systems.TW_PERMIT,
    "insurance_card": systems.INSURANCE_CARD,
}


@dataclass
class Batch:
    frame: pd.DataFrame  # input columns + match columns + resident_id (clean or None) + rid_hash
    records: list[tuple]
    rid_hashes: list[str]
    docs: list[tuple[str, ...]]
    invalid_ids: int


def clean_resident_ids(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Upper-cased 18-character IDs and a mask of those that are valid (GB 11643), vectorised."""
    text = values.astype(object).where(values.notna(), "").astype(str)
    text = text.str.replace(r"[\s-]", "", regex=True).str.upper()
    ok = text.str.fullmatch(r"\d{17}[\dX]").to_numpy(dtype=bool)
    valid = np.zeros(len(text), dtype=bool)
    if ok.any():
        sub = text[ok]
        digits = np.frombuffer("".join(sub.str[:17]).encode(), dtype=np.uint8).reshape(-1, 17) - 48
        check_ok = _CHECK[(digits * _WEIGHTS).sum(axis=1) % 11] == sub.str[17].to_numpy()
        born = pd.to_datetime(sub.str[6:14], format="%Y%m%d", errors="coerce")
        today = pd.Timestamp.now(tz="Asia/Shanghai").tz_localize(None)
        date_ok = (born.notna() & (born <= today) & (born.dt.year >= 1870)).to_numpy(dtype=bool)
        provinces = {p: province_name(p) is not None for p in pd.unique(sub.str[:2])}
        province_ok = sub.str[:2].map(provinces).to_numpy(dtype=bool)
        valid[ok] = check_ok & date_ok & province_ok
    return text.astype(object).where(valid, None), pd.Series(valid, index=values.index)


def prepare_batch(frame: pd.DataFrame, vault: IdentifierVault) -> Batch:
    """Validate, fill from the ID, normalise and hash a batch of registrations."""
    frame = frame.reset_index(drop=True).copy()
    present = frame.get("resident_id", pd.Series([None] * len(frame)))
    rid, valid = clean_resident_ids(present)
    invalid = int((present.notna() & (present.astype(str).str.strip() != "") & ~valid).sum())
    frame["resident_id"] = rid
    _fill_from_id(frame, valid)
    match = prepare(frame)
    for col in MATCH_COLUMNS:
        frame[col] = match[col]
    unique_ids = pd.unique(rid[valid])
    hashes = {v: vault.hash(systems.RESIDENT_ID, v) for v in unique_ids}
    frame["rid_hash"] = rid.map(hashes).where(valid, "")
    docs = _document_keys(frame, vault)
    records = list(match.itertuples(index=False, name=None))
    return Batch(frame, records, frame["rid_hash"].tolist(), docs, invalid)


def _fill_from_id(frame: pd.DataFrame, valid: pd.Series) -> None:
    rid = frame["resident_id"]
    from_id_date = rid.str[6:10] + "-" + rid.str[10:12] + "-" + rid.str[12:14]
    from_id_sex = np.where(rid.str[16].fillna("0").astype(int) % 2 == 1, "male", "female")
    for col, derived in (("birth_date", from_id_date), ("gender", from_id_sex)):
        current = frame[col] if col in frame.columns else pd.Series([None] * len(frame))
        blank = current.isna() | (current.astype(str) == "")
        frame[col] = current.astype(object).where(
            ~(blank & valid), pd.Series(derived, index=frame.index)
        )


def _document_keys(frame: pd.DataFrame, vault: IdentifierVault) -> list[tuple[str, ...]]:
    """Keys of identifiers that name one person: the MRN at its institution, passports, cards."""
    columns: list[pd.Series] = []
    if "mrn" in frame.columns and "credit_code" in frame.columns:
        mrn = systems.MRN_PREFIX + frame["credit_code"].astype(str) + "|" + frame["mrn"].astype(str)
        columns.append(mrn.where(frame["mrn"].notna(), ""))
    for col, system in DOCUMENT_COLUMNS.items():
        if col in frame.columns:
            values = frame[col].astype(object)
            table = {v: document_key(vault, system, str(v)) for v in pd.unique(values.dropna())}
            columns.append(values.map(table).fillna(""))
    if not columns:
        return [()] * len(frame)
    stacked = pd.concat(columns, axis=1).to_numpy()
    return [tuple(k for k in row if k) for row in stacked]


def document_key(vault: IdentifierVault, system: str, value: str) -> str:
    """The matcher's key of a document identifier: keyed hash if sensitive, else system|value."""
    return vault.hash(system, value) if system in systems.SENSITIVE else f"{system}|{value}"
