"""Benchmark of viewing (调阅): a doctor's timeline over HTTP beside the bare SQL for the same rows.

    .venv/bin/python bench/view.py [--reports 1000000] [--patients 100000] [--requests 2000]
                                   [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Creates its own PostgreSQL database (dropped afterwards), writes the synthetic city's institutions
(``rhip.synth.city``), golden patients (1% merged into another) with one registration each at a
random hospital, and ``--reports`` reports with ~2 observations per lab report, generated with
numpy and written with COPY (``rhip.store.bulk_insert``); no ingest path. Then it serves the app
with uvicorn in a subprocess on a loopback port (auth gate, policy, audit append in the read's
transaction) and times ``GET /api/patients/{id}/timeline`` for random patients registered at the
doctor's institution (care relationship, purpose TREAT) over one keep-alive httpx client. The
baseline runs the timeline's own statement (``viewing.timeline_query``) for the same patients on a
raw psycopg connection. Last line:
``RESULT view reports=<n> p50_ms=<a> p99_ms=<b> sql_p99_ms=<c>``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from rhip.exchange.models import observations, reports
from rhip.exchange.viewing import timeline_query
from rhip.identity.models import persons, registrations
from rhip.registry.models import districts, institutions
from rhip.store import bulk_insert, make_engine, upgrade
from rhip.synth.city import build_city

SECRET = "bench-view-secret-key-not-for-production"
START = pd.Timestamp("2021-01-01", tz="UTC")
SPAN_S = 3 * 365 * 86400
LAB_CODES = ["718-7", "6690-2", "777-3", "1742-6", "14682-9", "14749-6", "4548-4", "14647-2"]
EXAM_CODES = ["24627-2", "36643-5", "24558-9", "24725-4"]
CHUNK = 200_000


def main() -> None:
    args = _args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    name = f"rhip_bench_view_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    try:
        _run(url, args)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reports", type=int, default=1_000_000)
    p.add_argument("--patients", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the server subprocess
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


def _run(url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    doctor_org, patient_ids = _fill(engine, rng, args)
    notes = _indexes(engine)
    print(f"filled {args.reports:,} reports in {time.perf_counter() - t0:.0f} s", flush=True)
    sample = list(rng.choice(patient_ids, size=args.requests))
    sql = _time_sql(engine, sample)
    http = _time_http(url, doctor_org, sample)
    engine.dispose()
    for note in notes:
        print("NOTE", note)
    print(f"http: n={len(http)} p50={_pct(http, 50):.2f} ms p90={_pct(http, 90):.2f} ms "
          f"p99={_pct(http, 99):.2f} ms max={max(http):.2f} ms")  # fmt: skip
    print(f"sql (baseline, same rows): p50={_pct(sql, 50):.2f} ms p99={_pct(sql, 99):.2f} ms")
    print(
        "included: HTTP + JSON, auth (bearer token verify), policy decide with care "
        "relationship lookup, audit append (hash chain) in the read's transaction"
    )
    print(f"RESULT view reports={args.reports} p50_ms={_pct(http, 50):.2f} "
          f"p99_ms={_pct(http, 99):.2f} sql_p99_ms={_pct(sql, 99):.2f}")  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _fill(engine: Engine, rng: np.random.Generator, args) -> tuple[str, np.ndarray]:
    """City, patients, registrations, reports, observations; returns the doctor's institution
    and the patients registered there (the ones the benchmark asks for)."""
    city = build_city(args.seed)
    now = pd.Timestamp.now(tz="UTC")
    inst = city.institutions
    with engine.begin() as conn:
        bulk_insert(conn, districts, city.districts)
        bulk_insert(conn, institutions, inst.assign(created_at=now, updated_at=now))
    issuers = inst.loc[inst["type"].isin(["public_hospital", "private_hospital", "lab"]), "id"]
    issuers = issuers.to_numpy()
    doctor_org = issuers[0]
    n = args.patients
    pids = np.array([uuid.UUID(int=int(x)).hex for x in rng.integers(0, 2**63, n)])
    merged = rng.random(n) < 0.01
    survivor = np.where(merged, pids[rng.integers(0, n, n)], None)
    survivor[pids == survivor] = None
    is_merged = pd.notna(survivor)
    people = pd.DataFrame({"id": pids, "status": np.where(is_merged, "merged", "active"),
                           "merged_into": survivor, "created_at": now,
                           "updated_at": now})  # fmt: skip
    home = np.where(rng.random(n) < 0.3, doctor_org, issuers[rng.integers(0, len(issuers), n)])
    regs = pd.DataFrame({"id": [uuid.uuid4().hex for _ in range(n)], "person_id": pids,
                         "institution_id": home, "outcome": "new",
                         "registered_at": now})  # fmt: skip
    with engine.begin() as conn:
        bulk_insert(conn, persons, people)
        bulk_insert(conn, registrations, regs)
    for lo in range(0, args.reports, CHUNK):
        _reports_chunk(engine, rng, pids, issuers, min(CHUNK, args.reports - lo), now)
        print(f"  reports {min(lo + CHUNK, args.reports):,}", flush=True)
    asked = pids[(home == doctor_org) & ~pd.notna(survivor)]
    return doctor_org, asked


def _reports_chunk(engine, rng, pids, issuers, m: int, now) -> None:
    # skewed like a city: 1% chronic patients get a fifth of the reports (~200 each at 1M)
    chronic = rng.random(m) < 0.2
    n = len(pids)
    who = pids[np.where(chronic, rng.integers(0, n // 100, m), rng.integers(0, n, m))]
    issued = START + pd.to_timedelta(rng.integers(0, SPAN_S, m), unit="s")
    exam = rng.random(m) < 0.2
    ids = np.array([uuid.uuid4().hex for _ in range(m)])
    status = np.where(rng.random(m) < 0.97, "final", "preliminary")
    current = rng.random(m) < 0.98  # the rest: superseded or cancelled versions
    codes = np.where(exam, np.array(EXAM_CODES)[rng.integers(0, 4, m)],
                     np.array(LAB_CODES)[rng.integers(0, 8, m)])  # fmt: skip
    frame = pd.DataFrame({
        "id": ids, "report_key": ids, "version": 1, "current": current, "patient_id": who,
        "institution_id": issuers[rng.integers(0, len(issuers), m)],
        "kind": np.where(exam, "exam", "lab"), "code_system": "http://loinc.org", "code": codes,
        "display": np.where(exam, "影像检查", "检验"), "status": status,
        "specimen": np.where(exam, None, "全血"),
        "conclusion": np.where(exam, "未见明显异常", None),
        "collected_at": issued - pd.Timedelta(hours=2), "issued_at": issued, "recorded_at": now,
    })  # fmt: skip
    lab = np.flatnonzero(~exam)
    k = rng.integers(1, 4, len(lab))  # 1-3 observations per lab report
    rep = np.repeat(lab, k)
    seq = np.concatenate([np.arange(1, x + 1) for x in k]) if len(k) else np.array([])
    values = rng.normal(100, 20, len(rep)).round(1)
    obs = pd.DataFrame({
        "report_id": ids[rep], "patient_id": who[rep], "seq": seq, "code": codes[rep],
        "std_code": codes[rep], "value_type": "NM", "value_num": values, "unit": "g/L",
        "reference_range": "80-120",
        "abnormal_flag": np.where(values > 120, "H", np.where(values < 80, "L", "N")),
        "status": "F", "observed_at": issued[rep] - pd.Timedelta(hours=2),
    })  # fmt: skip
    with engine.begin() as conn:
        bulk_insert(conn, reports, frame)
        bulk_insert(conn, observations, obs)


def _indexes(engine: Engine) -> list[str]:
    """ANALYZE after the fill, so the planner sees the real table sizes."""
    with engine.begin() as conn:
        conn.execute(text("analyze"))
    return []


def _time_sql(engine: Engine, sample: list[str]) -> list[float]:
    """The timeline statement on a raw psycopg connection, server-side prepared."""
    dialect = engine.dialect
    raw = engine.raw_connection()
    out = []
    try:
        cur = raw.driver_connection.cursor()
        for i, pid in enumerate([*sample[:100], *sample]):
            compiled = timeline_query(pid, limit=51).compile(dialect=dialect)
            params = compiled.construct_params()
            t = time.perf_counter()
            cur.execute(str(compiled), params, prepare=True)
            cur.fetchall()
            if i >= 100:  # the first 100 warm the cache
                out.append((time.perf_counter() - t) * 1000)
    finally:
        raw.close()
    return out


def _time_http(url: str, doctor_org: str, sample: list[str]) -> list[float]:
    import httpx

    from rhip.kernel.settings import Settings
    from rhip.security.schemas import Principal, Role
    from rhip.security.tokens import issue

    port = _free_port()
    env = {**os.environ, "RHIP_DATABASE_URL": url, "RHIP_SECRET_KEY": SECRET, "RHIP_ENV": "test"}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", url, "--port", str(port)], env=env
    )
    try:
        settings = Settings(secret_key=SECRET, env="test")
        token = issue(settings, Principal("u-bench", "dr.bench", Role.DOCTOR, doctor_org))
        headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREAT"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            _wait(client)
            out = []
            for i, pid in enumerate([*sample[:100], *sample]):
                t = time.perf_counter()
                r = client.get(f"/api/patients/{pid}/timeline")
                elapsed = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"timeline {pid}: {r.status_code} {r.text[:300]}")
                if i >= 100:
                    out.append(elapsed)
        return out
    finally:
        server.terminate()
        server.wait(10)


def _wait(client) -> None:
    for _ in range(200):
        try:
            if client.get("/health").status_code == 200:
                return
        except Exception:  # the server is still starting
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, port: int) -> None:
    """The app as deployed plus whatever the lead has not wired yet (routers, auth gate)."""
    import uvicorn

    from rhip.api import app as app_module
    from rhip.api import auth
    from rhip.api.routers import viewing as viewing_router
    from rhip.kernel.settings import Settings

    app = app_module.create_app(Settings(database_url=url, secret_key=SECRET, env="test"))
    if "rhip.api.routers.viewing" not in app_module.ROUTERS:
        app.include_router(viewing_router.router)
    if not any(m.cls is auth.AuthGate for m in app.user_middleware):
        auth.install(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
