"""A synthetic stream of reports (检验/检查报告) for the synthetic city's registered patients.

Lab panels (血常规, 肝功能, 肾功能+电解质, 血糖血脂, 生化全套: 10-17 results each) with values
drawn by sex and age around published Chinese reference intervals, some abnormal,
flagged H/L; imaging reports (CT, MR, DR, US) with findings (检查所见) and impression
(诊断意见) in Chinese. About half
the institutions send LOINC codes, the others their local item codes (the platform's starter map
maps them). ~5% of reports come first as preliminary, then final; ~1% are later corrected.
Everything is drawn with numpy from one seed; renderers to HL7 v2 and FHIR NDJSON are in
``rhip.synth.reports_render``.

>>> import pandas as pd
>>> regs = pd.DataFrame({"institution_id": ["h1"], "credit_code": ["C1"], "mrn": ["P1"],
...     "name": ["张三"], "gender": ["male"], "birth_date": ["1970-05-01"],
...     "resident_id": [None]})
>>> reps, obs = generate_reports(regs, None, 20, seed=1, imaging=0.0)
>>> len(reps) >= 20, int(obs.groupby("report").size().min()) >= 10
(True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhip.identity.intake import clean_resident_ids
from rhip.synth.people import REFERENCE_DATE
from rhip.synth.reports_data import EXAMS, FINDINGS, ITEMS, PANEL_WEIGHTS, PANELS

FINDINGS_LOINC = ("18782-3", "检查所见")
IMPRESSION_LOINC = ("19005-8", "诊断意见")
_ITEM_CODES = np.array(list(ITEMS))
_ITEM_TABLE = np.array([v[3:] for v in ITEMS.values()], dtype=float)  # means, sds, range …
_ITEM_INDEX = {code: i for i, code in enumerate(ITEMS)}


def generate_reports(
    registrations: pd.DataFrame,
    institutions: pd.DataFrame | None,
    n_reports: int,
    seed: int,
    *,
    imaging: float = 0.1,
    preliminary: float = 0.05,
    corrected: float = 0.01,
    gb18030: float = 0.03,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n_reports`` reports (plus their preliminary and corrected versions) for registrations
    (``rhip.synth.people`` columns), as a reports frame (one row per message, in issue order)
    and an observations frame (``report`` = row number in the reports frame).
    """
    rng = np.random.default_rng(seed)
    base = _base_reports(rng, registrations, n_reports, imaging)
    base["loinc"] = _code_style(base["institution_id"], institutions, seed)
    obs = _lab_observations(rng, base)
    reports, obs = _versions(rng, base, obs, preliminary, corrected)
    reports["charset"] = np.where(
        rng.random(len(reports)) < gb18030, "GB 18030-2000", "UNICODE UTF-8"
    )
    reports["message_id"] = [f"S{seed}-{i:08d}" for i in range(len(reports))]
    return reports, _exam_observations(reports, obs)


def _base_reports(
    rng: np.random.Generator, regs: pd.DataFrame, n: int, imaging: float
) -> pd.DataFrame:
    pick = rng.integers(0, len(regs), n)
    r = regs.iloc[pick].reset_index(drop=True)
    rid, valid = clean_resident_ids(r["resident_id"])
    surname_len = r["_surname_len"] if "_surname_len" in r else pd.Series(1, index=r.index)
    exam = rng.random(n) < imaging
    panel = rng.choice(len(PANELS), n, p=np.array(PANEL_WEIGHTS) / sum(PANEL_WEIGHTS))
    which = rng.integers(0, len(EXAMS), n)
    stop = np.datetime64(f"{REFERENCE_DATE.isoformat()}T00:00:00", "s").astype("int64")
    collected = stop - (rng.random(n) * 365 * 86400).astype("int64")
    turnaround = np.where(exam, rng.integers(1800, 172800, n), rng.integers(1800, 28800, n))
    born = pd.to_datetime(r["birth_date"], errors="coerce")
    age = (pd.Timestamp(REFERENCE_DATE) - born).dt.days.fillna(40 * 365).to_numpy() / 365.25
    return pd.DataFrame(
        {
            "base": np.arange(n),
            "institution_id": r["institution_id"].astype(str),
            "credit_code": r["credit_code"].astype(str),
            "mrn": r["mrn"].astype(str),
            "resident_id": rid.where(pd.Series(valid, index=rid.index), None),
            "name": r["name"].fillna("").astype(str),
            "surname_len": surname_len.fillna(1).astype(int).to_numpy(),
            "gender": r["gender"].fillna("unknown").astype(str),
            "birth_date": r["birth_date"].fillna("").astype(str),
            "age": age,
            "kind": np.where(exam, "exam", "lab"),
            "panel": np.where(exam, -1, panel),
            "exam": np.where(exam, which, -1),
            "variant": rng.random(n),
            "filler": np.char.add("F", np.char.zfill(np.arange(1, n + 1).astype(str), 9)),
            "collected_at": pd.to_datetime(collected, unit="s", utc=True),
            "issued_at": pd.to_datetime(collected + turnaround, unit="s", utc=True),
        }
    )


def _code_style(ids: pd.Series, institutions: pd.DataFrame | None, seed: int) -> np.ndarray:
    """True where the institution sends LOINC codes; about half send local codes."""
    known = ids.unique()
    rng = np.random.default_rng(seed + 7)
    loinc = dict(zip(sorted(known), rng.random(len(known)) < 0.5, strict=True))
    return ids.map(loinc).to_numpy(dtype=bool)


def _lab_observations(rng: np.random.Generator, base: pd.DataFrame) -> pd.DataFrame:
    """Results of every lab report: values by sex and age, ~6% of them abnormal, flagged."""
    items = [np.array([_ITEM_INDEX[c] for c in p[4]]) for p in PANELS]
    lengths = np.array([len(i) for i in items])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate(items)
    lab = base[base["kind"] == "lab"]
    panel = lab["panel"].to_numpy()
    counts = lengths[panel]
    report = np.repeat(lab["base"].to_numpy(), counts)
    pos = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    item = flat[np.repeat(starts[panel], counts) + pos]
    t = _ITEM_TABLE[item]
    male = np.repeat((lab["gender"] == "male").to_numpy(), counts)
    age = np.repeat(lab["age"].to_numpy(), counts)
    mean = np.where(male, t[:, 0], t[:, 2]) * (1 + t[:, 7] * np.maximum(age - 40, 0) / 10)
    value = rng.normal(mean, np.where(male, t[:, 1], t[:, 3]))
    odd = rng.random(len(value)) < 0.06
    value = np.where(odd, value * rng.choice([0.55, 1.6, 2.2], len(value)), value)
    value = np.maximum(value, 0.0)
    low, high, decimals = t[:, 4], t[:, 5], t[:, 6].astype(int)
    value = np.round(value * 10.0**decimals) / 10.0**decimals
    return pd.DataFrame(
        {
            "base": report,
            "seq": pos + 1,
            "local_code": _ITEM_CODES[item],
            "item": item,
            "value_type": "NM",
            "value_num": value,
            "flag": np.where(value > high, "H", np.where(value < low, "L", "N")),
        }
    )


def _versions(rng, base: pd.DataFrame, obs: pd.DataFrame, preliminary: float, corrected: float):
    """Final reports, preliminary versions before some, corrections after a few; issue order."""
    n = len(base)
    pre = base[rng.random(n) < preliminary].copy()
    pre["issued_at"] = pre["issued_at"] - pd.to_timedelta(rng.integers(600, 7200, len(pre)), "s")
    pre["status"] = "P"
    corr = base[rng.random(n) < corrected].copy()
    corr["issued_at"] = corr["issued_at"] + pd.to_timedelta(
        rng.integers(3600, 259200, len(corr)), "s"
    )
    corr["status"] = "C"
    reports = pd.concat([base.assign(status="F"), pre, corr], ignore_index=True)
    for col in ("base", "panel", "exam", "surname_len"):  # an empty part may widen the dtype
        reports[col] = reports[col].astype("int64")
    reports = reports.sort_values("issued_at", kind="stable").reset_index(drop=True)
    reports["report"] = np.arange(len(reports))
    out = obs.merge(reports[["base", "report", "status"]], on="base").sort_values(
        ["report", "seq"], kind="stable"
    )
    fix = (out["status"] == "C") & (out["seq"] == 1)  # the corrected result: re-measured
    out.loc[fix, "value_num"] = np.round(out.loc[fix, "value_num"] * 1.1, 2)
    return reports, out.drop(columns=["status"]).reset_index(drop=True)


def _exam_observations(reports: pd.DataFrame, obs: pd.DataFrame) -> pd.DataFrame:
    """Findings and impression of the imaging reports (two TX results each), with the lab
    results, as one observations frame with display names, units and reference ranges.
    """
    exams = reports[reports["kind"] == "exam"]
    texts = []
    for row in exams[["report", "exam", "variant"]].itertuples(index=False):  # a few % of rows
        variants = FINDINGS[EXAMS[row.exam][2]]
        pick = 0 if row.variant < 0.6 else 1 + int(row.variant * 97) % (len(variants) - 1)
        findings, impression = variants[pick]
        texts += [
            (row.report, 1, *FINDINGS_LOINC, findings),
            (row.report, 2, *IMPRESSION_LOINC, impression),
        ]
    lab = obs.assign(
        loinc_code=[ITEMS[c][0] for c in obs["local_code"]] if len(obs) else [],
    )
    t = _ITEM_TABLE[obs["item"].to_numpy()] if len(obs) else np.zeros((0, 8))
    units = np.array([v[2] for v in ITEMS.values()])[obs["item"].to_numpy()] if len(obs) else []
    names = np.array([v[1] for v in ITEMS.values()])[obs["item"].to_numpy()] if len(obs) else []
    lab = lab.assign(
        display=names,
        unit=units,
        reference_range=[f"{lo:g}-{hi:g}" for lo, hi in zip(t[:, 4], t[:, 5], strict=True)],
        value_text=_format(obs["value_num"].to_numpy(), t[:, 6].astype(int)),
    )
    text = pd.DataFrame(texts, columns=["report", "seq", "loinc_code", "display", "value_text"])
    text = text.assign(local_code=text["loinc_code"], value_type="TX", value_num=np.nan, unit="",
                       reference_range="", flag="")  # fmt: skip
    cols = ["report", "seq", "local_code", "loinc_code", "display", "value_type", "value_num",
            "value_text", "unit", "reference_range", "flag"]  # fmt: skip
    both = pd.concat([lab[cols], text[cols]], ignore_index=True)
    return both.sort_values(["report", "seq"], kind="stable").reset_index(drop=True)


def _format(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for d in np.unique(decimals):
        rows = decimals == d
        out[rows] = np.char.mod(f"%.{d}f", values[rows])
    return out
