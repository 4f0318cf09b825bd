"""Synthetic lab and exam reports (合成报告) for the web tests and bench/web.py.

Written straight into the report store with set-based inserts, over the residents the MPI holds
after ``rhip.synth.synthesize``. Values are drawn around each test's reference range so a share
of them is abnormal (H/L); exam reports carry findings and an impression. Also fills the daily
quality scorecard when its table exists, so the overview has QC figures to show.
"""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
from sqlalchemy import Engine, inspect, select

from rhip.exchange.models import observations, reports
from rhip.exchange.reports import OBSERVATION_COLUMNS as STORED_OBSERVATION_COLUMNS
from rhip.exchange.reports import REPORT_COLUMNS
from rhip.exchange.terminology import STD_COLUMNS
from rhip.identity.models import persons
from rhip.kernel.clock import today_cst
from rhip.registry.models import institutions
from rhip.schema import load_all
from rhip.store import bulk_insert

LOINC = "http://loinc.org"
# code, display, specimen, [(code, display, unit, low, high)]
LAB_PANELS = [
    ("58410-2", "血常规", "全血", [
        ("6690-2", "白细胞计数", "10*9/L", 3.5, 9.5),
        ("718-7", "血红蛋白", "g/L", 130.0, 175.0),
        ("777-3", "血小板计数", "10*9/L", 125.0, 350.0),
    ]),
    ("2345-7", "空腹血糖", "血清", [("2345-7", "葡萄糖", "mmol/L", 3.9, 6.1)]),
    ("24325-3", "肝功能", "血清", [
        ("1742-6", "丙氨酸氨基转移酶", "U/L", 9.0, 50.0),
        ("1920-8", "天门冬氨酸氨基转移酶", "U/L", 15.0, 40.0),
    ]),
    ("4548-4", "糖化血红蛋白", "全血", [("4548-4", "糖化血红蛋白", "%", 4.0, 6.0)]),
]  # fmt: skip
EXAMS = [
    ("CT-CHEST", "胸部CT平扫", "双肺纹理清晰，未见实变影；纵隔居中。", "胸部CT平扫未见异常。"),
    ("US-ABD", "腹部超声", "肝脏大小正常，回声稍增强；胆囊壁光滑。", "脂肪肝（轻度）。"),
    ("ECG", "常规心电图", "窦性心律，心率 72 次/分，ST-T 未见异常。", "正常心电图。"),
]  # fmt: skip
# the seed leaves the standardised (terminology) columns empty
OBSERVATION_COLUMNS = tuple(c for c in STORED_OBSERVATION_COLUMNS if c not in STD_COLUMNS)
SENDING_TYPES = ("public_hospital", "private_hospital", "lab", "chc", "maternal_child")


def seed_reports(
    engine: Engine,
    per_patient: float = 6.0,
    days: int = 30,
    seed: int = 1,
    chunk: int = 50_000,
    total: int | None = None,
) -> int:
    """About ``per_patient`` current reports per golden patient over the last ``days`` days; with
    ``total``, that many reports, the rest spread over stand-in patients (``bench-…``) so that a
    real patient keeps a realistic timeline in a large store."""
    rng = np.random.default_rng(seed)
    with engine.connect() as conn:
        patients = list(conn.execute(select(persons.c.id).order_by(persons.c.id)).scalars())
        senders = list(
            conn.execute(
                select(institutions.c.id)
                .where(
                    institutions.c.connection_status == "connected",
                    institutions.c.type.in_(SENDING_TYPES),
                )
                .order_by(institutions.c.id)
            ).scalars()
        )
    n = int(len(patients) * per_patient)
    if total is not None and total > n:
        patients += [f"bench-{i:07d}" for i in range(int((total - n) / per_patient))]
        n = total
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    written = 0
    while written < n:
        size = min(chunk, n - written)
        rep, obs = _chunk(rng, size, patients, senders, now, days)
        with engine.begin() as conn:
            bulk_insert(conn, reports, rep, REPORT_COLUMNS)
            bulk_insert(conn, observations, obs, OBSERVATION_COLUMNS)
        written += size
    seed_quality(engine, senders[:60], days, rng)
    return n


def _chunk(rng, size, patients, senders, now, days):
    who = rng.integers(0, len(patients), size)
    where = rng.integers(0, len(senders), size)
    # a few institutions send most: the first tenth of senders gets half the volume
    busy = rng.random(size) < 0.5
    where[busy] = rng.integers(0, max(1, len(senders) // 10), int(busy.sum()))
    ago = rng.uniform(0, days * 86400, size)
    kinds = rng.random(size) < 0.8  # lab
    panel = rng.integers(0, len(LAB_PANELS), size)
    exam = rng.integers(0, len(EXAMS), size)
    rep, obs = [], []
    for k in range(size):
        rid = uuid.uuid4().hex
        issued = now - dt.timedelta(seconds=float(ago[k]))
        pid, inst = patients[who[k]], senders[where[k]]
        if kinds[k]:
            code, display, specimen, items = LAB_PANELS[panel[k]]
            findings = conclusion = None
            for seq, item in enumerate(items, 1):
                obs.append(_observation(rng, rid, pid, seq, item, issued))
        else:
            code, display, findings, conclusion = EXAMS[exam[k]]
            specimen = None
        kind = "lab" if kinds[k] else "exam"
        rep.append((
            rid, f"R{rid[:12]}", 1, True, pid, inst, kind, LOINC if kind == "lab" else None,
            code, display, "final", f"P{rid[:8]}", f"F{rid[:8]}", specimen, findings, conclusion,
            issued - dt.timedelta(hours=2), issued, None, issued + dt.timedelta(minutes=3),
        ))  # fmt: skip
    return rep, obs


def _observation(rng, rid, pid, seq, item, issued) -> tuple:
    code, display, unit, low, high = item
    mid, half = (low + high) / 2, (high - low) / 2
    value = round(float(rng.normal(mid, half * 0.8)), 1 if high < 100 else 0)
    value = max(value, 0.1)
    flag = "H" if value > high else ("L" if value < low else "N")
    return (
        rid, pid, seq, LOINC, code, display, "NM", value, None, None, None, unit,
        f"{low:g}-{high:g}", flag, "F", issued - dt.timedelta(hours=2),
    )  # fmt: skip


def seed_quality(engine: Engine, institution_ids: list[str], days: int, rng) -> int:
    """Daily scorecard rows (institution × rule × day) when the quality table exists."""
    tables = load_all().tables
    if "quality_daily" not in tables or not inspect(engine).has_table("quality_daily"):
        return 0
    table = tables["quality_daily"]
    today = today_cst()
    rows = []
    for inst in dict.fromkeys(institution_ids):
        base = rng.uniform(0.85, 0.995)
        for d in range(days):
            for rule in ("completeness.unit", "validity.numeric"):
                checked = int(rng.integers(20, 200))
                passed = round(checked * min(1.0, rng.normal(base, 0.02)))
                rows.append((inst, today - dt.timedelta(days=d), rule, checked, passed, 0, 0))
    with engine.begin() as conn:  # keep what ingest (e.g. rhip synth) already counted
        taken = {tuple(r) for r in conn.execute(
            select(table.c.institution_id, table.c.day, table.c.rule_id))}  # fmt: skip
        rows = [r for r in rows if r[:3] not in taken]
        bulk_insert(conn, table, rows, table.c.keys())
    return len(rows)
