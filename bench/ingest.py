"""Benchmark of report ingest: bulk NDJSON and MLLP beside a raw baseline, on the same reports.

    .venv/bin/python bench/ingest.py [--reports 20000] [--messages 20000] [--residents 3000]
        [--seed 1] [--repeat 3] [--connections 4] [--processes 2] [--resolver mpi|stub] [--pg URL]
        [--skip-bulk] [--mllp-only] [--bulk-only]

Creates its own databases (a temp SQLite file; a fresh PostgreSQL database, dropped afterwards),
synthesizes the city, residents and MPI registrations (``rhip.synth.service.synthesize``), and
generates lab reports (≥ 10 observations each, ``rhip.synth.reports``) at the 8 busiest
institutions. Then, per database:

* ``raw``: the same report and observation rows written straight into the tables
  (``bulk_insert``: executemany on SQLite, binary COPY on PostgreSQL, as the platform writes
  them) — the baseline;
* ``bulk``: the NDJSON import of one file per institution (``rhip.exchange.ndjson.import_files``,
  one pipelined import as ``rhip ingest FILE…`` runs it);
* ``mllp`` (PostgreSQL): the listener as a subprocess with ``--processes`` worker processes
  (``rhip serve --mllp-processes``; default 2, one per core here), ``--connections`` senders
  each waiting for its ACK (sent only after the message's commit) before the next message.

Each path runs ``--repeat`` times (raw and bulk interleaved) and the best run is reported: this
machine's speed drifts between runs. ``--resolver`` applies to the MLLP path; bulk lines resolve
their patients through the MPI as ``rhip ingest`` does.

Last lines: ``RESULT ingest path=<bulk|mllp|raw> db=<sqlite|postgres> reports_per_s=<x>
observations_per_s=<y>``. Targets: bulk ≥ 50% of raw on both databases; MLLP ≥ 1,000 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import uvloop
from sqlalchemy import Engine, delete, select, text

from rhip.exchange.models import inbox_messages, observations, reports
from rhip.exchange.reports import OBSERVATION_COLUMNS, REPORT_COLUMNS
from rhip.identity.models import registrations
from rhip.kernel.settings import Settings
from rhip.store import bulk_insert, make_engine, upgrade
from rhip.synth import people
from rhip.synth.city import build_city
from rhip.synth.reports import generate_reports
from rhip.synth.reports_render import to_hl7, write_files
from rhip.synth.service import synthesize

PG = os.environ.get(
    "RHIP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def stub_resolver(conn, reg) -> str:
    """Golden id straight from the MRN: MLLP without the MPI's one look-up per message."""
    first = reg.identifiers[0]
    return f"p-{first.system[-18:]}-{first.value}"


def prepare(engine: Engine, settings: Settings, args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """City, residents, MPI registrations; then the reports at the busiest institutions."""
    upgrade(engine)
    synthesize(engine, settings, args.residents, args.seed, reports=0)  # ours come below
    city = build_city(args.seed)
    _, regs = people.generate(args.residents, city.institutions, args.seed)
    busiest = regs["institution_id"].value_counts().index[:8]
    regs = regs[regs["institution_id"].isin(busiest)].reset_index(drop=True)
    return generate_reports(regs, city.institutions, args.reports, args.seed, imaging=0.0,
                            preliminary=0.0, corrected=0.0)  # fmt: skip


def raw_rows(engine: Engine, reps: pd.DataFrame, obs: pd.DataFrame) -> tuple[list, list]:
    """The rows ingest would write, with golden patients from the MPI (one query)."""
    with engine.connect() as conn:
        known = conn.execute(
            select(registrations.c.institution_id, registrations.c.mrn, registrations.c.person_id)
        ).all()
    person = {(i, m): p for i, m, p in known}
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    rid = [uuid.uuid4().hex for _ in range(len(reps))]
    pid = [
        person.get((i, m), "?") for i, m in zip(reps["institution_id"], reps["mrn"], strict=True)
    ]
    rrows = [
        (rid[k], f"filler:{f}", 1, True, pid[k], i, "lab", "http://loinc.org", "x", "panel",
         "final", None, f, None, None, None, c.to_pydatetime(), s.to_pydatetime(), None, now)
        for k, (f, i, c, s) in enumerate(zip(reps["filler"], reps["institution_id"],
                                             reps["collected_at"], reps["issued_at"], strict=True))
    ]  # fmt: skip
    at = {k: r[16] for k, r in enumerate(rrows)}
    std = len(OBSERVATION_COLUMNS) - 16  # standardised columns: the same values again
    orows = [
        (rid[k], pid[k], q, "http://loinc.org", c, d, "NM", v, None, t, None, u, rr, fl, "F", at[k],
         *("http://loinc.org", c, d, v, u)[:std])
        for k, q, c, d, v, t, u, rr, fl in zip(
            obs["report"], obs["seq"], obs["loinc_code"], obs["display"], obs["value_num"],
            obs["value_text"], obs["unit"], obs["reference_range"], obs["flag"], strict=True)
    ]  # fmt: skip
    return rrows, orows


def run_raw(engine: Engine, reps: pd.DataFrame, obs: pd.DataFrame) -> float:
    """Rows built, then one COPY (executemany) per table for all rows, one transaction."""
    started = time.perf_counter()
    rrows, orows = raw_rows(engine, reps, obs)
    built = time.perf_counter()
    with engine.begin() as conn:
        bulk_insert(conn, reports, rrows, REPORT_COLUMNS, binary=True)
        bulk_insert(conn, observations, orows, OBSERVATION_COLUMNS, binary=True)
    seconds = time.perf_counter() - started
    wrote = seconds - (built - started)
    print(f"  raw: rows built in {built - started:.2f} s, written in {wrote:.2f} s "
          f"({len(orows) / wrote:.0f} observation rows/s)")  # fmt: skip
    clear(engine)
    return seconds


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # no foreign-key checks (a deleted inbox row's referrers, unindexed): DELETE, not
            # TRUNCATE, so that the tables' statistics stay those of a filled table, as in a
            # running platform (after a TRUNCATE the planner takes the tables for empty until
            # the next ANALYZE and scans them)
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in (observations, reports, inbox_messages):
            conn.execute(delete(table))


def run_bulk(engine: Engine, settings: Settings, folder: Path) -> float:
    from rhip.exchange import ndjson, terminology
    from rhip.kernel.crypto import IdentifierVault

    vault = IdentifierVault(settings.secret_key)
    terminology.warm()  # the UCUM registry, built once per process (~1 s): a server has it
    started = time.perf_counter()
    paths = sorted(folder.glob("*.ndjson"))  # one import: the files' chunks pipelined
    results = ndjson.import_files(engine, [(p, p.stem) for p in paths], vault=vault)
    for path, result in zip(paths, results, strict=True):
        if result.errors:
            print(f"  {path.name}: {len(result.errors)} errors, first: {result.errors[0]}")
    return time.perf_counter() - started


def run_mllp(url: str, messages: list[bytes], args) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    cmd = [sys.executable, "-m", "rhip.exchange.mllp", "--db", url, "--port", "0",
           "--workers", str(args.workers), "--processes", str(args.processes)]  # fmt: skip
    if args.resolver == "stub":
        cmd += ["--resolver", "ingest:stub_resolver"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    try:
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
        # the senders on uvloop too: the load generator's CPU is taken from the same two cores
        return uvloop.run(_send_all(port, messages, args.connections))
    finally:
        proc.terminate()
        proc.wait()


async def _send_all(port: int, messages: list[bytes], connections: int) -> tuple[float, int]:
    async def sender(part: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        accepted = 0
        for m in part:
            writer.write(b"\x0b" + m + b"\x1c\r")
            await writer.drain()
            ack = await reader.readuntil(b"\x1c\r")
            accepted += b"MSA|AA|" in ack
        writer.close()
        return accepted

    started = time.perf_counter()
    parts = [messages[i::connections] for i in range(connections)]
    accepted = sum(await asyncio.gather(*(sender(p) for p in parts)))
    return time.perf_counter() - started, accepted


def result(path: str, db: str, n_reports: int, n_obs: int, seconds: float) -> str:
    return (f"RESULT ingest path={path} db={db} reports_per_s={n_reports / seconds:.0f} "
            f"observations_per_s={n_obs / seconds:.0f}")  # fmt: skip


def bench_db(name: str, url: str, args, tmp: Path, lines: list[str]) -> None:
    """Each path ``--repeat`` times, raw and bulk interleaved; the best run of each is the
    figure (this machine's speed drifts between runs: the best is the least disturbed)."""
    settings = Settings(var_dir=str(tmp / name))
    engine = make_engine(url)
    reps, obs = prepare(engine, settings, args)
    n, m = len(reps), len(obs)
    print(f"{name}: {n} reports, {m} observations ({m / n:.1f} a report)")
    bulk = not args.skip_bulk and not args.mllp_only
    folder = write_files(reps, obs, tmp / name / "synth", args.seed)["ndjson"] if bulk else None
    times: dict[str, list[float]] = {"raw": [], "bulk": []}
    for _ in range(args.repeat if not args.mllp_only else 0):
        times["raw"].append(run_raw(engine, reps, obs))
        if bulk:
            times["bulk"].append(run_bulk(engine, settings, folder))
            clear(engine)
    for path, seconds in times.items():
        if seconds:
            print(f"  {path}: {' '.join(f'{s:.2f}' for s in seconds)} s; best {min(seconds):.2f} s")
            lines.append(result(path, name, n, m, min(seconds)))
    if name == "postgres" and not args.bulk_only:
        sent = to_hl7(reps.iloc[: args.messages], obs[obs["report"] < args.messages])
        m_sent = int((obs["report"] < args.messages).sum())
        runs = []
        for _ in range(args.repeat):
            seconds, accepted = run_mllp(url, sent, args)
            clear(engine)
            print(
                f"  mllp {len(sent)} messages, {accepted} AA, {seconds:.2f} s "
                f"({args.processes} processes, {args.connections} connections)"
            )
            runs.append((accepted / seconds, accepted, seconds))
        _, accepted, seconds = max(runs)
        lines.append(result("mllp", name, accepted, m_sent * accepted // len(sent), seconds))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--residents", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; best is kept")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="MLLP batches committed at once")
    parser.add_argument("--processes", type=int, default=2, help="MLLP worker processes")
    parser.add_argument("--resolver", choices=["mpi", "stub"], default="mpi")
    parser.add_argument("--pg", default=PG, help="PostgreSQL admin URL")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--mllp-only", action="store_true", help="PostgreSQL, MLLP path only")
    parser.add_argument("--bulk-only", action="store_true", help="raw and bulk paths, no MLLP")
    args = parser.parse_args()
    if args.mllp_only:
        args.only = "postgres"
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only != "postgres":
            bench_db("sqlite", f"sqlite:///{tmp / 'bench.db'}", args, tmp, lines)
        if args.only != "sqlite":
            db = f"rhip_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            try:
                bench_db("postgres", args.pg.rsplit("/", 1)[0] + "/" + db, args, tmp, lines)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                admin.dispose()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
