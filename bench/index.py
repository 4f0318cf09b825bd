"""Benchmark: uncertainty analysis of the ASEM index (51 units, 49 indicators, 4 levels).

1,000 Monte Carlo replications over weights (±25 %), normaliser (min-max 1–100 or z-score 10/2),
aggregator (arithmetic or geometric mean) and Winsorisation limit (1–5 points) — COINr's usual
sensitivity set-up — run by the batched engine, beside a baseline in the same run that regenerates
the whole pipeline through the ordinary build path (`rhip.index.run`) once per replication, on the
same random design. The two must agree.

    .venv/bin/python bench/index.py [--replications 1000] [--baseline 1000]

Last lines: `RESULT index ua replications=<n> seconds=<s>` and
`RESULT index baseline replications=<n> seconds=<s>`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rhip.index import read_data, read_framework, run
from rhip.index.uncertainty import UncertaintySpec, evaluate, random_design, uncertainty

ASEM = Path("/work/shared/data/coinr-asem")
PIPELINE = {
    "steps": [
        {"step": "denominate"},
        {"step": "impute", "method": "group_mean", "group": "EurAsia_group"},
        {"step": "screen", "min_data_availability": 0.9},
        {"step": "treat", "winmax": 5},
        {"step": "normalise", "method": "minmax", "lower": 0, "upper": 100},
        {"step": "aggregate", "method": "arithmetic"},
    ]
}


def _timed_ua(base, spec: UncertaintySpec) -> float:
    t0 = time.perf_counter()
    ua = uncertainty(base, spec)
    seconds = time.perf_counter() - t0
    widest = ua.table.assign(width=ua.table.q95_rank - ua.table.q05_rank).nlargest(3, "width")
    print(f"batched UA: {seconds:.3f} s, {ua.failed} failed replications")
    print(
        "widest 5-95 % rank intervals:",
        ", ".join(f"{r.uCode} {r.q05_rank:g}-{r.q95_rank:g}" for r in widest.itertuples()),
    )
    return seconds


def _timed_baseline(base, spec: UncertaintySpec, n: int) -> float:
    """Full rebuild through `run` per replication, then the batch engine on the same draws."""
    design = random_design(spec, len(base.codes), n, np.random.default_rng(99))
    t0 = time.perf_counter()
    slow = evaluate(base, spec, design, engine="rebuild")
    seconds = time.perf_counter() - t0
    diff = float(np.nanmax(np.abs(evaluate(base, spec, design, engine="batch") - slow)))
    print(
        f"baseline (full rebuild per replication): {seconds:.3f} s; "
        f"max |batch - rebuild| on the same {n} draws = {diff:.2e}"
    )
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replications", type=int, default=1000)
    ap.add_argument(
        "--baseline", type=int, default=1000, help="replications of the rebuild baseline"
    )
    ap.add_argument("--data", type=Path, default=ASEM)
    args = ap.parse_args()

    fw = read_framework(args.data / "ASEM_iMeta.csv")
    data = read_data(args.data / "ASEM_iData.csv", fw)
    base = run(fw, data, PIPELINE)
    spec = UncertaintySpec(
        replications=args.replications,
        seed=1,
        weight_noise=0.25,
        normalisers=[
            {"method": "minmax", "lower": 1, "upper": 100},
            {"method": "zscore", "mean": 10, "sd": 2},
        ],
        aggregators=["arithmetic", "geometric"],
        winmax=[1, 2, 3, 4, 5],
    )
    print(f"ASEM: {data.n} units, {len(fw.indicators)} indicators, {fw.max_level} levels")

    ua_seconds = _timed_ua(base, spec)
    n_base = min(args.baseline, args.replications)
    base_seconds = _timed_baseline(base, spec, n_base)
    print(
        f"speed-up per replication: {base_seconds / n_base / (ua_seconds / args.replications):.0f}x"
    )
    print(f"RESULT index ua replications={args.replications} seconds={ua_seconds:.3f}")
    print(f"RESULT index baseline replications={n_base} seconds={base_seconds:.3f}")


if __name__ == "__main__":
    main()
