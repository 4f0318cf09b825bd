"""Statistical analysis (统计分析): correlations, Cronbach's alpha and PCA per aggregate.

These answer the questions a methodology review asks of a composite index: does each indicator
move with its dimension (correlation), do the members of a group measure one thing (alpha), and
how much of a group's variance does one component carry (PCA)?
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhip.index.results import IndexResult


def _latest_rows(result: IndexResult) -> np.ndarray:
    if not result.panel:
        return np.arange(result.data.n)
    return np.flatnonzero(result.data.times == result.data.times.max())


def _pairwise_corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def parent_correlations(result: IndexResult) -> pd.DataFrame:
    """Pearson correlation of every node with its parent and with the index (latest year)."""
    rows, fw = _latest_rows(result), result.framework
    V = result.values[rows]
    pos = {c: i for i, c in enumerate(result.codes)}
    out = []
    for code, node in fw.nodes.items():
        if node.parent is None:
            continue
        out.append(
            {
                "code": code,
                "name": node.name,
                "level": node.level,
                "parent": node.parent,
                "r_parent": _pairwise_corr(V[:, pos[code]], V[:, pos[node.parent]]),
                "r_index": _pairwise_corr(V[:, pos[code]], V[:, pos[fw.root]]),
            }
        )
    return pd.DataFrame(out)


def cronbach_alpha(X: np.ndarray) -> float:
    """Cronbach's alpha of the columns of X (complete rows only).

    >>> round(cronbach_alpha(np.array([[1, 2, 3], [2, 3, 4], [3, 4, 6], [4, 6, 7.0]])), 4)
    0.9923
    """
    X = X[~np.isnan(X).any(axis=1)]
    k = X.shape[1]
    if k < 2 or len(X) < 2:
        return float("nan")
    item_var = X.var(axis=0, ddof=1).sum()
    total_var = X.sum(axis=1).var(ddof=1)
    return float(k / (k - 1) * (1 - item_var / total_var)) if total_var > 0 else float("nan")


def pca(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalue shares and first-component loadings of the correlation matrix (complete rows)."""
    X = X[~np.isnan(X).any(axis=1)]
    sd = X.std(axis=0, ddof=1)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    vals, vecs = np.linalg.eigh(np.corrcoef(Z, rowvar=False))
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    first = vecs[:, 0] * np.sign(vecs[:, 0].sum() or 1.0)
    return vals / vals.sum(), first


def group_statistics(result: IndexResult) -> pd.DataFrame:
    """Per aggregate: number of children, Cronbach's alpha, PC1 variance share and loadings."""
    rows, fw = _latest_rows(result), result.framework
    V = result.values[rows]
    pos = {c: i for i, c in enumerate(result.codes)}
    out = []
    for code in fw.aggregates:
        kids = fw.children(code)
        X = V[:, [pos[k] for k in kids]]
        share, load = (
            pca(X) if len(kids) > 1 and (~np.isnan(X).any(axis=1)).sum() > 2 else ([np.nan], [])
        )
        out.append(
            {
                "code": code,
                "name": fw.nodes[code].name,
                "level": fw.nodes[code].level,
                "children": len(kids),
                "cronbach_alpha": cronbach_alpha(X) if len(kids) > 1 else np.nan,
                "pc1_variance_share": float(share[0]),
                "pc1_loadings": ", ".join(f"{k}={v:.2f}" for k, v in zip(kids, load, strict=False)),
            }
        )
    return pd.DataFrame(out)
