"""Server time of every web page (网页响应时间) over a synthesized city, against a static asset.

Serves the real app with uvicorn on a loopback port, signs in as each role and times N requests
per page from a client on the same machine. Prints one line per page:

    RESULT web page=<name> reports=<n> p50_ms=<a> p95_ms=<b>

and ``page=static`` for /web/static/charts.js as the baseline. Targets: every page ≤ 100 ms at
demo scale; the doctor timeline ≤ 300 ms at 1,000,000 reports (``--reports 1000000``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rhip.api import create_app  # noqa: E402
from rhip.exchange.models import observations, reports  # noqa: E402
from rhip.identity.models import registrations  # noqa: E402
from rhip.kernel.settings import Settings  # noqa: E402
from rhip.metrics.summary import refresh  # noqa: E402
from rhip.schema import load_all  # noqa: E402
from rhip.store import make_engine, upgrade  # noqa: E402
from rhip.synth.service import synthesize  # noqa: E402
from web.conftest import PASSWORD, _accounts, serve  # noqa: E402
from web.seed import seed_reports  # noqa: E402


def timed(client: httpx.Client, url: str, n: int) -> tuple[float, float]:
    client.get(url)  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def signed_in(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60)
    r = c.post("/web/login", data={"username": username, "password": PASSWORD})
    assert r.status_code in (200, 303), r.status_code
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=0, help="total reports (0: demo scale)")
    ap.add_argument("--residents", type=int, default=300)
    ap.add_argument("-n", type=int, default=30, help="requests per page")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rhip-bench-web-"))
    try:
        run(folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, args) -> None:
    engine = make_engine(f"sqlite:///{folder / 'rhip.db'}")
    upgrade(engine)
    load_all().create_all(engine)
    settings = Settings(env="test", var_dir=folder)
    synthesize(engine, settings, residents=args.residents, seed=42)
    t = time.perf_counter()
    seed_reports(engine, per_patient=6.0, days=30, total=args.reports or None)
    print(f"seeded in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    t = time.perf_counter()
    refresh(engine)  # the first fold of the daily summaries: every report so far
    print(f"summaries folded in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(reports)).scalar_one()
        patient = conn.execute(
            select(reports.c.patient_id).where(~reports.c.patient_id.like("bench-%")).limit(1)
        ).scalar_one()
        inst = conn.execute(
            select(registrations.c.institution_id).where(registrations.c.person_id == patient)
        ).scalar()
        rep, code = conn.execute(
            select(observations.c.report_id, observations.c.code)
            .where(observations.c.patient_id == patient)
            .limit(1)
        ).one()
    _accounts(engine, patient, inst)
    with serve(create_app(settings, engine)) as base:
        op, dr, pt = (signed_in(base, u) for u in ("op", "dr", "pt"))
        op.get("/web/index")  # builds the index once
        pages = [
            ("static", op, "/web/static/charts.js"),
            ("overview", op, "/web/overview"),
            ("institutions", op, "/web/institutions"),
            ("institution", op, f"/web/institutions/{inst}"),
            ("index", op, "/web/index"),
            ("doctor_search", dr, "/web/doctor"),
            ("doctor_timeline", dr, f"/web/doctor/patients/{patient}?purpose=TREAT"),
            ("doctor_report", dr, f"/web/doctor/reports/{rep}?purpose=TREAT"),
            ("doctor_trend", dr, f"/web/doctor/patients/{patient}/trend?purpose=TREAT&code={code}"),
            ("patient", pt, "/web/me"),
            ("patient_report", pt, f"/web/me/reports/{rep}"),
        ]
        for name, client, url in pages:
            p50, p95 = timed(client, url, args.n)
            print(f"RESULT web page={name} reports={n} p50_ms={p50:.1f} p95_ms={p95:.1f}")


if __name__ == "__main__":
    main()
