"""Aggregation (合成): weighted means up the tree, Copeland, and TOPSIS.

The means are computed for a whole level at once as matrix products over a child→parent
membership matrix, so the same code aggregates one data set (units × indicators) or a batch of
replications (R × units × indicators) in the uncertainty analysis. As in COINr, weights are
relative and re-normalised over the children that have data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rhip.index.errors import IndexMethodError
from rhip.index.framework import Framework
from rhip.index.steps.base import Method, NoParams, Params, register

AGGREGATORS: dict[str, Method] = {}
BY_BLOCK = {"copeland", "topsis"}  # need all units of a year at once


class GenMeanParams(Params):
    p: float = 1.0  # 1 arithmetic, 0 geometric, −1 harmonic, 2 quadratic ...


class TopsisParams(Params):
    normalisation: str = "vector"  # classic TOPSIS; or "minmax" (pymcdm's default)
    scale: float = 100.0


for _name, _doc in (
    ("arithmetic", "Weighted arithmetic mean (COINr a_amean)."),
    ("geometric", "Weighted geometric mean (COINr a_gmean); values must be > 0."),
    ("harmonic", "Weighted harmonic mean (COINr a_hmean); values must be ≠ 0."),
):
    AGGREGATORS[_name] = Method(_name, NoParams, None, _doc)
AGGREGATORS["generalised"] = Method(
    "generalised", GenMeanParams, None, "Weighted power mean of order p."
)


@dataclass
class LevelPlan:
    level: int
    parents: list[str]
    parent_idx: np.ndarray
    child_idx: np.ndarray  # positions in the node vector
    member: np.ndarray  # children × parents, 1 where child belongs to parent


@dataclass
class AggPlan:
    codes: list[str]  # indicators first, then aggregates bottom-up
    n_ind: int
    levels: list[LevelPlan]


def make_plan(fw: Framework) -> AggPlan:
    codes = fw.indicators + fw.aggregates
    pos = {c: i for i, c in enumerate(codes)}
    levels = []
    for level in range(2, fw.max_level + 1):
        parents = fw.codes_at(level)
        children = [c for par in parents for c in fw.children(par)]
        member = np.zeros((len(children), len(parents)))
        for k, par in enumerate(parents):
            for c in fw.children(par):
                member[children.index(c), k] = 1.0
        levels.append(
            LevelPlan(
                level,
                parents,
                np.array([pos[p] for p in parents]),
                np.array([pos[c] for c in children]),
                member,
            )
        )
    return AggPlan(codes, len(fw.indicators), levels)


def weighted_mean(C: np.ndarray, W: np.ndarray, kind: str, p: float = 1.0, strict: bool = True):
    """Weighted mean of C (..., n, c) with weights W (..., c, q) ignoring NaN → (..., n, q)."""
    mask = ~np.isnan(C)
    den = mask.astype(float) @ W
    if kind == "generalised":
        kind, p = ("geometric", 0.0) if p == 0 else ("power", p)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if kind == "arithmetic":
            out = np.where(mask, C, 0.0) @ W / den
        elif kind == "geometric" or (kind == "power" and p < 0):
            bad = mask & (C <= 0)
            _check(bad, strict, "geometric/harmonic-type mean needs values > 0")
            if kind == "geometric":
                out = np.exp(
                    np.where(mask & ~bad, np.log(np.where(bad | ~mask, 1.0, C)), 0.0) @ W / den
                )
            else:
                out = (np.where(mask, C, 1.0) ** p * mask @ W / den) ** (1.0 / p)
            if bad.any():
                out = np.where(bad.astype(float) @ W > 0, np.nan, out)
        elif kind == "harmonic":
            bad = mask & (C == 0)
            _check(bad, strict, "harmonic mean needs non-zero values")
            out = den / (np.where(mask & ~bad, 1.0 / np.where(bad | ~mask, 1.0, C), 0.0) @ W)
            if bad.any():
                out = np.where(bad.astype(float) @ W > 0, np.nan, out)
        else:  # power mean, p > 0
            bad = mask & (C < 0)
            _check(bad, strict, "power mean needs non-negative values")
            out = (np.where(mask, np.abs(C), 0.0) ** p @ W / den) ** (1.0 / p)
    return np.where(den > 0, out, np.nan)


def _check(bad: np.ndarray, strict: bool, reason: str) -> None:
    if strict and bad.any():
        raise IndexMethodError(reason, row=str(tuple(int(i) for i in np.argwhere(bad)[0])))


@dataclass
class LevelMethod:
    name: str
    params: Params


WeightHook = Callable[[LevelPlan, np.ndarray, np.ndarray], np.ndarray]


def aggregate_tree(
    V_ind: np.ndarray,
    plan: AggPlan,
    weights: np.ndarray,
    methods: dict[int, LevelMethod],
    *,
    blocks: list[np.ndarray] | None = None,
    dat_thresh: float | None = None,
    strict: bool = True,
    weight_hook: WeightHook | None = None,
) -> np.ndarray:
    """Scores for every node: V_ind (..., n, m) → (..., n, N); weights (N,) or (..., N)."""
    shape = (*V_ind.shape[:-1], len(plan.codes))
    V = np.full(shape, np.nan)
    V[..., : plan.n_ind] = V_ind
    weights = np.array(weights, dtype=float)
    for lp in plan.levels:
        C = V[..., lp.child_idx]
        if weight_hook is not None:
            weights = weight_hook(lp, C, weights)
        m = methods[lp.level]
        if m.name in BY_BLOCK:
            out = _by_block(C, lp, weights, m, blocks)
        else:
            W = weights[..., lp.child_idx][..., :, None] * lp.member
            out = weighted_mean(C, W, m.name, getattr(m.params, "p", 1.0), strict)
        if dat_thresh is not None:
            avail = (~np.isnan(C)).astype(float) @ lp.member / lp.member.sum(axis=0)
            out = np.where(avail < dat_thresh, np.nan, out)
        V[..., lp.parent_idx] = out
    return V


def _by_block(C, lp: LevelPlan, weights, m: LevelMethod, blocks) -> np.ndarray:
    if C.ndim > 2:
        return np.stack(
            [
                _by_block(C[r], lp, weights[r] if weights.ndim > 1 else weights, m, blocks)
                for r in range(C.shape[0])
            ]
        )
    out = np.full((C.shape[0], len(lp.parents)), np.nan)
    blocks = blocks or [np.arange(C.shape[0])]
    fn = AGGREGATORS[m.name].fn
    for k in range(len(lp.parents)):
        cols = np.flatnonzero(lp.member[:, k])
        w = weights[lp.child_idx[cols]]
        for rows in blocks:
            out[rows, k] = fn(C[np.ix_(rows, cols)], w, m.params)
    return out


@register(AGGREGATORS, "copeland", NoParams)
def a_copeland(X: np.ndarray, w: np.ndarray, p=None) -> np.ndarray:
    """Copeland scores from COINr's weighted outranking matrix (row sums)."""
    w = w / np.nansum(w)
    gt = (X[:, None, :] > X[None, :, :]) * w
    eq = (X[:, None, :] == X[None, :, :]) * w
    orm = gt.sum(axis=2) + eq.sum(axis=2) / 2
    n = len(X)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    orm = np.where(upper, orm, 0.0)
    orm = orm + np.where(upper.T, 1.0 - orm.T, 0.0)  # COINr fills the lower triangle as 1 − upper
    return orm.sum(axis=1)


@register(AGGREGATORS, "topsis", TopsisParams)
def a_topsis(X: np.ndarray, w: np.ndarray, p: TopsisParams) -> np.ndarray:
    """TOPSIS closeness to the ideal unit (all children are benefit criteria after normalising)."""
    out = np.full(len(X), np.nan)
    ok = ~np.isnan(X).any(axis=1)
    Y = X[ok]
    if len(Y) == 0:
        return out
    w = w / w.sum()
    if p.normalisation == "vector":
        norm = np.sqrt((Y**2).sum(axis=0))
        R = Y / np.where(norm > 0, norm, 1.0)
    elif p.normalisation == "minmax":
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        R = np.where(hi > lo, (Y - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    else:
        raise IndexMethodError(
            f"TOPSIS normalisation must be 'vector' or 'minmax', not {p.normalisation!r}"
        )
    V = R * w
    d_pos = np.sqrt(((V - V.max(axis=0)) ** 2).sum(axis=1))
    d_neg = np.sqrt(((V - V.min(axis=0)) ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[ok] = d_neg / (d_pos + d_neg) * p.scale
    return out
