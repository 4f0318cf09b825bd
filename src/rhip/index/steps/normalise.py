"""Normalisers (标准化): bring indicators onto a common scale, column by column.

Each takes `X` (rows × indicators, raw units, NaN = missing), the indicators' directions `d`
(1 or -1), their framework nodes and typed params. Like COINr's `Normalise`, negative-direction
indicators are flipped (multiplied by -1) before the COINr-style methods, so "higher is better"
holds for every result.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata

from rhip.index.errors import IndexInputError
from rhip.index.framework import Node
from rhip.index.steps.base import Method, NoParams, Params, register

NORMALISERS: dict[str, Method] = {}


class MinMaxParams(Params):
    lower: float = 0.0
    upper: float = 100.0


class ZScoreParams(Params):
    mean: float = 0.0
    sd: float = 1.0


class GoalpostParams(Params):
    scale: float = 100.0
    truncate: bool = True  # clip values beyond the goalposts
    low: float | None = None  # override framework goalposts for all indicators in scope
    high: float | None = None


class DistParams(Params):
    scale: float = 1.0  # COINr returns 0–1; set 100 for a 0–100 scale
    cap: bool = False  # cap scores above the target/reference at `scale`


class RefParams(DistParams):
    unit: str  # uCode of the reference unit


class RankParams(Params):
    pass


def _nanminmax(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(X, axis=0), np.nanmax(X, axis=0)


@register(NORMALISERS, "minmax", MinMaxParams)
def n_minmax(X, d, nodes, p: MinMaxParams, units=None):
    """Min-max onto [lower, upper] (COINr n_minmax)."""
    Xd = X * d
    lo, hi = _nanminmax(Xd)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (Xd - lo) / (hi - lo) * (p.upper - p.lower) + p.lower


@register(NORMALISERS, "zscore", ZScoreParams)
def n_zscore(X, d, nodes, p: ZScoreParams, units=None):
    """Z-score with sample standard deviation, rescaled to (mean, sd) (COINr n_zscore)."""
    if p.sd <= 0:
        raise IndexInputError(f"zscore sd must be positive, got {p.sd}", column="sd")
    Xd = X * d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(Xd, axis=0)
        sd = np.nanstd(Xd, axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (Xd - mu) / sd * p.sd + p.mean


@register(NORMALISERS, "goalposts", GoalpostParams)
def n_goalposts(X, d, nodes, p: GoalpostParams, units=None):
    """Fixed goalposts from the framework: comparable across years (ESI/HDI style)."""
    low = np.array(
        [p.low if p.low is not None else _need(n.goalpost_low, n, "GoalpostLow") for n in nodes]
    )
    high = np.array(
        [p.high if p.high is not None else _need(n.goalpost_high, n, "GoalpostHigh") for n in nodes]
    )
    if np.any(high <= low):
        bad = nodes[int(np.flatnonzero(high <= low)[0])]
        raise IndexInputError(
            f"goalposts of {bad.code!r} need low < high", row=bad.row, column="goalposts"
        )
    y = np.where(d > 0, (X - low) / (high - low), (high - X) / (high - low))
    if p.truncate:
        y = np.clip(y, 0.0, 1.0)
    return y * p.scale


def _need(value, node: Node, column: str) -> float:
    if value is None:
        raise IndexInputError(
            f"indicator {node.code!r} has no {column} for goalpost normalisation",
            row=node.row,
            column=column,
        )
    return value


@register(NORMALISERS, "rank", RankParams)
def n_rank(X, d, nodes, p, units=None):
    """Rank, higher value → higher rank, ties share the lowest (COINr n_rank)."""
    return _rank(X * d)


@register(NORMALISERS, "percentile_rank", RankParams)
def n_prank(X, d, nodes, p, units=None):
    """Percentile rank (rank − 1)/(n − 1) (COINr n_prank)."""
    n = np.sum(~np.isnan(X), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (_rank(X * d) - 1) / (n - 1)


@register(NORMALISERS, "borda", RankParams)
def n_borda(X, d, nodes, p, units=None):
    """Borda score rank − 1 (COINr n_borda)."""
    return _rank(X * d) - 1


def _rank(X: np.ndarray) -> np.ndarray:
    return rankdata(X, method="min", axis=0, nan_policy="omit").astype(float)


@register(NORMALISERS, "dist_max", DistParams)
def n_dist2max(X, d, nodes, p: DistParams, units=None):
    """1 − (max − x)/(max − min): distance to the best unit (COINr n_dist2max)."""
    Xd = X * d
    lo, hi = _nanminmax(Xd)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (1 - (hi - Xd) / (hi - lo)) * p.scale


@register(NORMALISERS, "dist_target", DistParams)
def n_dist2targ(X, d, nodes, p: DistParams, units=None):
    """1 − (target − x)/(target − min): distance to the framework's Target (COINr n_dist2targ)."""
    targ = np.array([_need(n.target, n, "Target") for n in nodes]) * d
    Xd = X * d
    lo, _ = _nanminmax(Xd)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = 1 - (targ - Xd) / (targ - lo)
    if p.cap:
        y = np.minimum(y, 1.0)
    return y * p.scale


@register(NORMALISERS, "dist_ref", RefParams)
def n_dist2ref(X, d, nodes, p: RefParams, units=None):
    """1 − (x_ref − x)/(x_ref − min): distance to a reference unit (COINr n_dist2ref)."""
    if units is None or p.unit not in set(units):
        raise IndexInputError(f"reference unit {p.unit!r} is not in the data", column="unit")
    Xd = X * d
    ref = Xd[list(units).index(p.unit)]
    lo, _ = _nanminmax(Xd)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = 1 - (ref - Xd) / (ref - lo)
    if p.cap:
        y = np.minimum(y, 1.0)
    return y * p.scale


@register(NORMALISERS, "fraction_max", DistParams)
def n_fracmax(X, d, nodes, p: DistParams, units=None):
    """x / max(x) (COINr n_fracmax)."""
    Xd = X * d
    _, hi = _nanminmax(Xd)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Xd / hi * p.scale


@register(NORMALISERS, "none", NoParams)
def n_none(X, d, nodes, p, units=None):
    """Leave values as they are (direction still applied)."""
    return X * d
