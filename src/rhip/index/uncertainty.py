"""Uncertainty and sensitivity analysis (不确定性与敏感性分析).

Each uncertain input is a *group* of U(0,1) numbers: weight noise (one number per weight,
mapped to a factor 1 ± noise), and one number each for the choice of normaliser, aggregator,
Winsorisation limit and imputation (mapped to one of the listed alternatives). `evaluate` turns
a matrix of such numbers into index scores for every replication:

* engine "batch" prepares each distinct combination of data choices once through the ordinary
  step runners, then aggregates all replications of a combination at once as a 3-D array
  (replications × units × indicators);
* engine "rebuild" regenerates the whole pipeline through `run` once per replication — the slow
  reference the batch engine is tested and benchmarked against.

Monte Carlo gives nominal, median and 5–95 % rank intervals; a Saltelli design gives first-order
and total sensitivity indices of the mean absolute rank shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from rhip.index.pipeline import Pipeline, StepSpec, run
from rhip.index.results import IndexResult, rank_desc
from rhip.index.steps.aggregate import aggregate_tree
from rhip.index.steps.prepare import year_blocks
from rhip.index.steps.runners import STEPS, State, aggregate_settings

Progress = Callable[[int], None] | None


class UncertaintySpec(BaseModel):
    """What varies. Empty lists mean "keep the pipeline's own choice"."""

    model_config = ConfigDict(extra="forbid")

    replications: int = 1000
    seed: int = 1
    weight_noise: float | None = 0.25  # each weight × U(1 − noise, 1 + noise)
    normalisers: list[dict[str, Any]] = []
    aggregators: list[str] = []
    winmax: list[int | None] = []  # None = no outlier treatment
    imputation: list[dict[str, Any]] = []
    target: str | None = None  # node whose ranks are studied (default: the index)

    def groups(self, n_weights: int) -> list[tuple[str, int]]:
        out = [("weights", n_weights)] if self.weight_noise else []
        for name in ("normalisers", "aggregators", "winmax", "imputation"):
            if len(getattr(self, name)) > 1:
                out.append((name, 1))
        return out


def _pick(options: list, u: np.ndarray) -> np.ndarray:
    return np.minimum((u * len(options)).astype(int), len(options) - 1)


def _steps_for(base: Pipeline, spec: UncertaintySpec, choice: dict[str, int]) -> list[dict]:
    """The base pipeline with the chosen alternatives substituted."""
    steps = [s.model_dump() for s in base.steps]
    names = [s["step"] for s in steps]

    def put(step: str, new: dict, before: str | None = None) -> None:
        if step in names:
            i = names.index(step)
            keep = {k: steps[i][k] for k in ("scope",) if k in steps[i]}
            steps[i] = {"step": step, **keep, **new}
        else:
            i = names.index(before) if before in names else 0
            steps.insert(i, {"step": step, **new})
            names.insert(i, step)

    if "imputation" in choice:
        put("impute", dict(spec.imputation[choice["imputation"]]), before="screen")
    if "winmax" in choice:
        w = spec.winmax[choice["winmax"]]
        put("treat", {"method": "none"} if w is None else {"winmax": w}, before="normalise")
    if "normalisers" in choice:
        put("normalise", dict(spec.normalisers[choice["normalisers"]]), before="aggregate")
    if "aggregators" in choice:
        i = names.index("aggregate") if "aggregate" in names else None
        if i is None:
            steps.append({"step": "aggregate"})
            i = len(steps) - 1
        steps[i] = {**steps[i], "method": spec.aggregators[choice["aggregators"]]}
    return steps


@dataclass
class Design:
    """U(0,1) numbers per group, one row per replication."""

    blocks: dict[str, np.ndarray]
    n: int


def random_design(
    spec: UncertaintySpec, n_weights: int, n: int, rng: np.random.Generator
) -> Design:
    return Design({g: rng.random((n, d)) for g, d in spec.groups(n_weights)}, n)


def evaluate(
    base: IndexResult,
    spec: UncertaintySpec,
    design: Design,
    engine: str = "batch",
    progress: Progress = None,
) -> np.ndarray:
    """Target scores for every replication: (replications × units of the latest year)."""
    target = base.codes.index(spec.target or base.framework.root)
    choices = {
        g: _pick(getattr(spec, g), design.blocks[g][:, 0]) for g in design.blocks if g != "weights"
    }
    w0 = np.array([base.weights.get(c, base.framework.nodes[c].weight) for c in base.codes])
    if "weights" in design.blocks:
        W = w0 * (1 + spec.weight_noise * (2 * design.blocks["weights"] - 1))
    else:
        W = np.broadcast_to(w0, (design.n, len(w0)))
    fn = _evaluate_batch if engine == "batch" else _evaluate_rebuild
    return fn(base, spec, choices, W, target, progress)


def _evaluate_rebuild(base, spec, choices, W, target, progress) -> np.ndarray:
    out = None
    for r in range(W.shape[0]):
        steps = _steps_for(base.pipeline, spec, {g: int(c[r]) for g, c in choices.items()})
        weights = {c: float(w) for c, w in zip(base.codes, W[r], strict=True)}
        for s in steps:
            if s["step"] == "aggregate":
                s["weights"] = weights
        try:
            res = run(base.framework, base.input_data, {"steps": steps})
            rows = year_blocks(res.data)[-1]
            scores = res.values[rows, target]
        except ValueError:
            scores = None
        if out is None:
            out = np.full((W.shape[0], len(year_blocks(base.data)[-1])), np.nan)
        if scores is not None and len(scores) == out.shape[1]:
            out[r] = scores
        if progress:
            progress(1)
    return out


def _evaluate_batch(base, spec, choices, W, target, progress) -> np.ndarray:
    n_rep = W.shape[0]
    keys = (
        np.stack([choices[g] for g in sorted(choices)], axis=1)
        if choices
        else np.zeros((n_rep, 0), int)
    )
    out = np.full((n_rep, len(year_blocks(base.data)[-1])), np.nan)
    prepared: dict[tuple, tuple] = {}
    for key in {tuple(k) for k in keys}:
        reps = np.flatnonzero((keys == key).all(axis=1)) if keys.shape[1] else np.arange(n_rep)
        choice = dict(zip(sorted(choices), key, strict=True))
        steps = _steps_for(base.pipeline, spec, choice)
        prep_key = tuple(
            (s["step"], repr(sorted(s.items()))) for s in steps if s["step"] != "aggregate"
        )
        if prep_key not in prepared:
            prepared[prep_key] = _prepare(base, steps)
        state, _ = prepared[prep_key]
        methods, dat_thresh, _ = aggregate_settings(
            _clone(state), StepSpec(**_agg(steps)), "uncertainty"
        )
        rows = year_blocks(state.data)[-1]
        V = np.broadcast_to(state.data.values[rows], (len(reps), *state.data.values[rows].shape))
        with np.errstate(all="ignore"):
            scores = aggregate_tree(
                V, state.plan, W[reps], methods, dat_thresh=dat_thresh, strict=False
            )
        if scores.shape[1] == out.shape[1]:
            out[reps] = scores[:, :, target]
        if progress:
            progress(len(reps))
    return out


def _agg(steps: list[dict]) -> dict:
    agg = next((s for s in steps if s["step"] == "aggregate"), {"step": "aggregate"})
    return {k: v for k, v in agg.items() if k != "weights"}


def _prepare(base: IndexResult, steps: list[dict]) -> tuple[State, dict]:
    """Run every step but the aggregation through the ordinary runners."""
    state = State.start(base.framework, base.input_data)
    pipe = Pipeline.load({"steps": [s for s in steps if s["step"] != "aggregate"]})
    for spec in pipe.steps:
        STEPS[spec.step](state, spec, "uncertainty")
    if state.weight_rules:
        raise ValueError("data-driven weights vary with the data; use engine='rebuild'")
    return state, _agg(steps)


def _clone(state: State) -> State:
    return State(state.fw, state.input_data, state.data, state.plan, state.weights.copy())


def rank_rows(scores: np.ndarray) -> np.ndarray:
    """Ranks within each replication (row): highest = 1."""
    return rank_desc(scores.T).T


@dataclass
class UncertaintyResult:
    table: pd.DataFrame  # per unit: nominal, median, q05, q95 rank; mean score
    ranks: np.ndarray  # replications × units
    failed: int  # replications that could not be computed (e.g. geometric mean of a negative)


def uncertainty(
    base: IndexResult, spec: UncertaintySpec, engine: str = "batch", progress: Progress = None
) -> UncertaintyResult:
    """Monte Carlo uncertainty analysis: rank intervals for every unit."""
    rng = np.random.default_rng(spec.seed)
    design = random_design(spec, len(base.codes), spec.replications, rng)
    scores = evaluate(base, spec, design, engine, progress)
    ok = ~np.isnan(scores).any(axis=1)
    ranks = rank_rows(scores[ok])
    rows = year_blocks(base.data)[-1]
    target = base.codes.index(spec.target or base.framework.root)
    nominal = rank_desc(base.values[rows, target][:, None])[:, 0]
    table = (
        pd.DataFrame(
            {
                "uCode": base.data.units[rows].astype(str),
                "uName": base.data.names[rows].astype(str),
                "nominal_score": base.values[rows, target],
                "nominal_rank": nominal,
                "median_rank": np.median(ranks, axis=0) if len(ranks) else np.nan,
                "q05_rank": np.percentile(ranks, 5, axis=0) if len(ranks) else np.nan,
                "q95_rank": np.percentile(ranks, 95, axis=0) if len(ranks) else np.nan,
                "mean_score": np.nanmean(scores[ok], axis=0) if len(ranks) else np.nan,
            }
        )
        .sort_values(["nominal_rank", "uCode"])
        .reset_index(drop=True)
    )
    return UncertaintyResult(table, ranks, int((~ok).sum()))


def sensitivity(
    base: IndexResult,
    spec: UncertaintySpec,
    n: int = 200,
    engine: str = "batch",
    progress: Progress = None,
    bootstrap: int = 200,
) -> pd.DataFrame:
    """First-order (S_i) and total (ST_i) indices of the mean absolute rank shift, per input group.

    Saltelli design: matrices A and B of U(0,1) blocks and, for each group i, A with block i
    taken from B; estimators of Saltelli et al. (2010) for S_i and Jansen for ST_i.
    """
    rng = np.random.default_rng(spec.seed)
    groups = spec.groups(len(base.codes))
    A = random_design(spec, len(base.codes), n, rng).blocks
    B = random_design(spec, len(base.codes), n, rng).blocks
    designs = [A, B] + [{g: (B[g] if g == name else A[g]) for g in A} for name, _ in groups]
    stacked = Design({g: np.concatenate([d[g] for d in designs]) for g in A}, n * len(designs))
    scores = evaluate(base, spec, stacked, engine, progress)
    rows = year_blocks(base.data)[-1]
    target = base.codes.index(spec.target or base.framework.root)
    nominal = rank_desc(base.values[rows, target][:, None])[:, 0]
    y = np.nanmean(np.abs(rank_rows(scores) - nominal), axis=1).reshape(len(designs), n)
    yA, yB = y[0], y[1]
    out = []
    for i, (name, _) in enumerate(groups):
        si, sti = _indices(yA, yB, y[2 + i])
        boot = [_indices(yA[b], yB[b], y[2 + i][b]) for b in rng.integers(0, n, (bootstrap, n))]
        lo, hi = np.nanpercentile(np.array(boot), [5, 95], axis=0) if boot else (np.nan, np.nan)
        out.append(
            {
                "input": name,
                "S_i": si,
                "ST_i": sti,
                "S_i_q05": lo[0],
                "S_i_q95": hi[0],
                "ST_i_q05": lo[1],
                "ST_i_q95": hi[1],
            }
        )
    return pd.DataFrame(out)


def _indices(yA: np.ndarray, yB: np.ndarray, yAB: np.ndarray) -> tuple[float, float]:
    var = np.nanvar(np.concatenate([yA, yB]))
    if not var > 0:
        return float("nan"), float("nan")
    return float(np.nanmean(yB * (yAB - yA)) / var), float(0.5 * np.nanmean((yA - yAB) ** 2) / var)
