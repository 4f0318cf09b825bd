"""Benchmark of the master patient index: three matchers on the same labelled registrations.

    .venv/bin/python bench/mpi.py [--residents 43000] [--seed 1] [--input labelled.csv]
                                  [--no-splink] [--persist]

Generates a synthetic city (≥ 100,000 registrations with the fixed noise of ``NoiseSpec.bench()``:
10% without resident ID, 5% one-character name error, 3% day/month swapped, 5% pinyin-only, 2%
changed phone) or reads registrations with a ``true_person`` column from ``--input``, then runs

* ``id-only``: registrations sharing a valid resident ID are one person, every other one is alone;
* ``rhip``: the online matcher, registrations fed one by one in arrival order (intake — validation,
  normalisation, hashing — is timed with it; persistence is not: see ``--persist``);
* ``splink``: the batch de-duplication (parameter estimation + prediction + clustering).

Pairwise precision/recall/F1 are counted set-based (``rhip.identity.quality``). Last lines:
``RESULT mpi matcher=<id-only|rhip|splink> records=<n> precision=<p> recall=<r> f1=<f>
seconds=<s>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rhip.identity import dedupe
from rhip.identity.intake import clean_resident_ids, prepare_batch
from rhip.identity.matcher import OnlineMatcher
from rhip.identity.quality import PairwiseScores, pairwise_scores
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.ids import make_credit_code
from rhip.kernel.regions import SHENZHEN
from rhip.synth.people import NoiseSpec, generate

TYPES = (
    ["public_hospital"] * 3
    + ["private_hospital"] * 3
    + ["chc"] * 30
    + ["clinic"] * 60
    + ["lab"] * 4
)


def institutions() -> pd.DataFrame:
    """100 institutions with the city's type mix over the districts (enough for matching)."""
    codes = list(SHENZHEN)
    return pd.DataFrame(
        {
            "id": [f"org-{i}" for i in range(len(TYPES))],
            "credit_code": [make_credit_code(f"12440300MB{i:07d}") for i in range(len(TYPES))],
            "type": TYPES,
            "district_code": [codes[i % len(codes)] for i in range(len(TYPES))],
        }
    )


def id_only(regs: pd.DataFrame) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    rid, valid = clean_resident_ids(regs["resident_id"])
    labels = np.where(
        valid, "id:" + rid.fillna(""), "row:" + pd.Series(np.arange(len(regs))).astype(str)
    )
    return labels, time.perf_counter() - started


def online(regs: pd.DataFrame, vault: IdentifierVault) -> tuple[np.ndarray, float, dict]:
    started = time.perf_counter()
    batch = prepare_batch(regs, vault)
    prepared = time.perf_counter()
    matcher = OnlineMatcher()
    match = matcher.match
    persons, outcomes = [], []
    for rec, rid, docs in zip(batch.records, batch.rid_hashes, batch.docs, strict=True):
        d = match(rec, rid, docs)
        persons.append(d.person)
        outcomes.append(d.outcome)
    done = time.perf_counter()
    info = {
        "intake_s": round(prepared - started, 2),
        "decide_s": round(done - prepared, 2),
        **pd.Series(outcomes).value_counts().to_dict(),
    }
    return np.asarray(persons), done - started, info


def batch_splink(regs: pd.DataFrame, vault: IdentifierVault) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    frame = prepare_batch(regs, vault).frame
    frame["unique_id"] = np.arange(len(frame))
    result = dedupe.run(frame)
    labels = (
        result.clusters.set_index("unique_id")["cluster_id"].reindex(frame["unique_id"]).to_numpy()
    )
    return labels, time.perf_counter() - started


def persist(regs: pd.DataFrame, vault: IdentifierVault) -> None:
    """Time ``register_many`` into a fresh SQLite database (decisions + batched writes)."""
    from rhip.identity.service import register_many
    from rhip.store import make_engine, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        stats = register_many(engine, vault, regs)
        engine.dispose()
    print(f"persist sqlite: {stats.registered} registrations in {stats.seconds:.2f}s "
          f"({stats.registered / stats.seconds:,.0f}/s incl. writes)")  # fmt: skip


def result_line(name: str, n: int, s: PairwiseScores, seconds: float) -> str:
    return (
        f"RESULT mpi matcher={name} records={n} precision={s.precision:.4f} "
        f"recall={s.recall:.4f} f1={s.f1:.4f} seconds={seconds:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=43_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input", type=Path, help="labelled registrations CSV (true_person column)")
    ap.add_argument("--no-splink", action="store_true")
    ap.add_argument("--persist", action="store_true", help="also time register_many on SQLite")
    args = ap.parse_args(argv)
    vault = IdentifierVault("bench-secret")
    if args.input:
        regs = pd.read_csv(args.input, dtype=str, keep_default_na=False).replace({"": None})
    else:
        started = time.perf_counter()
        _, regs = generate(args.residents, institutions(), seed=args.seed, noise=NoiseSpec.bench())
        people = regs["true_person"].nunique()
        print(f"generated {len(regs):,} registrations of {people:,} residents "
              f"in {time.perf_counter() - started:.2f}s")  # fmt: skip
    truth = regs["true_person"].to_numpy()
    lines = []
    labels, secs = id_only(regs)
    lines.append(result_line("id-only", len(regs), pairwise_scores(truth, labels), secs))
    labels, secs, info = online(regs, vault)
    print(f"rhip online: {len(regs) / secs:,.0f} registrations/s; {info}")
    lines.append(result_line("rhip", len(regs), pairwise_scores(truth, labels), secs))
    if not args.no_splink:
        labels, secs = batch_splink(regs, vault)
        lines.append(result_line("splink", len(regs), pairwise_scores(truth, labels), secs))
    if args.persist:
        persist(regs, vault)
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
