"""Weighting methods (权重): expert/manual, equal, AHP, entropy, CRITIC and PCA.

Data-driven methods take `C` (rows × children of one aggregate, already normalised so that
higher is better) and return weights summing to 1. Rows with a missing value are left out.
"""

from __future__ import annotations

import numpy as np

from rhip.index.errors import IndexInputError, IndexMethodError
from rhip.index.steps.base import Method, NoParams, Params, register

WEIGHTERS: dict[str, Method] = {}

# Random consistency index by matrix size (Tummala & Ling 1998, as pymcdm); Saaty's rounded
# table (0.58, 0.90, 1.12, ...) differs only in the second decimal.
RANDOM_INDEX = [
    0,
    0,
    0.5799,
    0.8921,
    1.1159,
    1.2358,
    1.3322,
    1.3952,
    1.4537,
    1.4882,
    1.5117,
    1.5356,
    1.5571,
    1.5714,
    1.5831,
]


class ManualParams(Params):
    weights: dict[str, float]  # code → weight (expert weights)


class AHPParams(Params):
    matrices: dict[str, list[list[float]]]  # aggregate code → pairwise matrix over its children
    max_cr: float = 0.1


def complete_rows(C: np.ndarray) -> np.ndarray:
    return C[~np.isnan(C).any(axis=1)]


@register(WEIGHTERS, "equal", NoParams)
def w_equal(C: np.ndarray, p=None) -> np.ndarray:
    """Equal weights."""
    return np.full(C.shape[1], 1.0 / C.shape[1])


@register(WEIGHTERS, "entropy", NoParams)
def w_entropy(C: np.ndarray, p=None) -> np.ndarray:
    """Entropy weight method (熵权法): more dispersion → more weight; 0·ln 0 = 0."""
    X = complete_rows(C)
    if len(X) < 2:
        raise IndexMethodError("entropy weights need at least two units with complete data")
    if np.any(X < 0):
        raise IndexMethodError(
            "entropy weights need non-negative values (normalise with min-max first)"
        )
    sums = X.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = X / sums
        plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)
    e = -plogp.sum(axis=0) / np.log(len(X))
    e = np.where(sums > 0, e, 1.0)  # an all-zero column carries no information
    d = 1.0 - e
    if d.sum() <= 0:
        return w_equal(C)
    return d / d.sum()


@register(WEIGHTERS, "critic", NoParams)
def w_critic(C: np.ndarray, p=None) -> np.ndarray:
    """CRITIC: contrast (sd of min-max values) × conflict (Σ 1 − correlation)."""
    X = complete_rows(C)
    if len(X) < 3:
        raise IndexMethodError("CRITIC weights need at least three units with complete data")
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    N = np.where(hi > lo, (X - lo) / span, 1.0)
    sd = N.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.corrcoef(N, rowvar=False) if N.shape[1] > 1 else np.ones((1, 1))
    R = np.nan_to_num(np.atleast_2d(R), nan=0.0)
    c = sd * (1.0 - R).sum(axis=0)
    if c.sum() <= 0:
        return w_equal(C)
    return c / c.sum()


@register(WEIGHTERS, "pca", NoParams)
def w_pca(C: np.ndarray, p=None) -> np.ndarray:
    """PCA: squared loadings of the first principal component of the correlation matrix."""
    X = complete_rows(C)
    if len(X) < 3 or X.shape[1] < 2:
        return w_equal(C)
    sd = X.std(axis=0, ddof=1)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    vals, vecs = np.linalg.eigh(np.cov(Z, rowvar=False))
    v = vecs[:, np.argmax(vals)]
    return v**2 / np.sum(v**2)


def ahp_weights(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Principal-eigenvector weights and consistency ratio CR = CI/RI (Saaty)."""
    m = np.asarray(matrix, dtype=float)
    n = m.shape[0]
    vals, vecs = np.linalg.eig(m)
    k = int(np.argmax(np.abs(vals)))
    w = np.abs(vecs[:, k].real)
    w = w / w.sum()
    if n < 3:
        return w, 0.0
    if n > len(RANDOM_INDEX):
        raise IndexInputError(f"AHP matrices are limited to {len(RANDOM_INDEX)} criteria")
    lam = float(np.max(vals.real))
    return w, (lam - n) / (n - 1) / RANDOM_INDEX[n - 1]


def check_pairwise(
    matrix, parent: str, children: list[str], where: str, max_cr: float
) -> np.ndarray:
    """Validate one AHP matrix (square, positive, reciprocal, consistent) and return weights."""
    m = np.asarray(matrix, dtype=float)
    n = len(children)
    if m.shape != (n, n):
        raise IndexInputError(
            f"AHP matrix for {parent!r} must be {n}×{n} (children {children}), got {m.shape}",
            file=where,
            row=parent,
            column="matrices",
        )
    if np.any(m <= 0) or not np.allclose(m * m.T, 1.0, rtol=1e-3):
        raise IndexInputError(
            f"AHP matrix for {parent!r} must be positive and reciprocal (a_ji = 1/a_ij)",
            file=where,
            row=parent,
            column="matrices",
        )
    w, cr = ahp_weights(m)
    if cr > max_cr:
        raise IndexInputError(
            f"AHP matrix for {parent!r} is inconsistent: consistency ratio {cr:.3f} > {max_cr}",
            file=where,
            row=parent,
            column="matrices",
        )
    return w
