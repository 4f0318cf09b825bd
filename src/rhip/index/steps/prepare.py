"""Data preparation steps: denominate (分母换算), impute (缺失值插补), screen units (筛选).

Imputation works within each year, as COINr imputes each coin of a purse separately, except
`latest`, which carries a unit's most recent earlier value forward (COINr `impute_panel`).
"""

from __future__ import annotations

import warnings

import numpy as np

from rhip.index.errors import IndexInputError
from rhip.index.io import Dataset
from rhip.index.steps.base import Method, NoParams, Params, register

IMPUTERS: dict[str, Method] = {}


class GroupParams(Params):
    group: str  # a *_group column of the data


class LatestParams(Params):
    max_time: int | None = None  # look back at most this many earlier years


def year_blocks(data: Dataset) -> list[np.ndarray]:
    """Row indices of each year (one block for a cross-section)."""
    if data.times is None:
        return [np.arange(data.n)]
    return [np.flatnonzero(data.times == t) for t in np.unique(data.times)]


def _fill(X: np.ndarray, rows: np.ndarray, fill: np.ndarray) -> None:
    block = X[rows]
    miss = np.isnan(block)
    X[rows] = np.where(miss, fill, block)


def _stat(block: np.ndarray, how: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(block, axis=0) if how == "mean" else np.nanmedian(block, axis=0)


@register(IMPUTERS, "mean", NoParams)
def i_mean(data: Dataset, X: np.ndarray, p) -> np.ndarray:
    """Replace a missing value by the indicator's mean that year (COINr i_mean)."""
    for rows in year_blocks(data):
        _fill(X, rows, _stat(X[rows], "mean"))
    return X


@register(IMPUTERS, "median", NoParams)
def i_median(data: Dataset, X: np.ndarray, p) -> np.ndarray:
    """Replace by the indicator's median that year (COINr i_median)."""
    for rows in year_blocks(data):
        _fill(X, rows, _stat(X[rows], "median"))
    return X


def _grouped(data: Dataset, X: np.ndarray, p: GroupParams, how: str) -> np.ndarray:
    if p.group not in data.groups:
        raise IndexInputError(
            f"group column {p.group!r} is not in the data (groups: {sorted(data.groups)})",
            file=data.file,
            row=1,
            column=p.group,
        )
    labels = data.groups[p.group]
    for rows in year_blocks(data):
        for g in np.unique(labels[rows]):
            if g == "":  # COINr skip_f_na: rows without a group are left alone
                continue
            sub = rows[labels[rows] == g]
            _fill(X, sub, _stat(X[sub], how))
    return X


@register(IMPUTERS, "group_mean", GroupParams)
def i_mean_grp(data: Dataset, X: np.ndarray, p: GroupParams) -> np.ndarray:
    """Replace by the mean of the unit's group that year (COINr i_mean_grp)."""
    return _grouped(data, X, p, "mean")


@register(IMPUTERS, "group_median", GroupParams)
def i_median_grp(data: Dataset, X: np.ndarray, p: GroupParams) -> np.ndarray:
    """Replace by the median of the unit's group that year (COINr i_median_grp)."""
    return _grouped(data, X, p, "median")


@register(IMPUTERS, "latest", LatestParams)
def i_latest(data: Dataset, X: np.ndarray, p: LatestParams) -> np.ndarray:
    """Panel data: carry the unit's latest earlier value forward (COINr impute_panel 'latest')."""
    if data.times is None or len(np.unique(data.times)) < 2:
        raise IndexInputError(
            "impute 'latest' needs panel data with several years in a Time column",
            file=data.file,
            column="Time",
        )
    years = np.unique(data.times)
    src = X.copy()
    index = {(u, t): i for i, (u, t) in enumerate(zip(data.units, data.times, strict=True))}
    for i in np.flatnonzero(np.isnan(src).any(axis=1)):
        earlier = years[years < data.times[i]][::-1]
        if p.max_time is not None:
            earlier = earlier[: p.max_time]
        for t in earlier:
            j = index.get((data.units[i], t))
            if j is None:
                continue
            miss = np.isnan(X[i])
            X[i, miss] = src[j, miss]
            if not np.isnan(X[i]).any():
                break
    return X


def denominate(
    data: Dataset, nodes: list, only: set[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Divide indicators by their Denominator column (× ScaleFactor), as COINr Denominate."""
    X = data.values.copy()
    done = []
    for j, node in enumerate(nodes):
        if not node.denominator or (only is not None and node.code not in only):
            continue
        if node.denominator not in data.denominators:
            raise IndexInputError(
                f"denominator {node.denominator!r} of indicator {node.code!r} "
                "has no column in the data",
                file=data.file,
                row=1,
                column=node.denominator,
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            X[:, j] = X[:, j] / (data.denominators[node.denominator] / node.scale_factor)
        done.append(node.code)
    return X, done


def availability(X: np.ndarray) -> np.ndarray:
    """Share of indicators with data, per row (COINr Dat_Avail)."""
    if X.shape[1] == 0:
        return np.ones(X.shape[0])
    return 1.0 - np.isnan(X).sum(axis=1) / X.shape[1]


def nonzero_share(X: np.ndarray) -> np.ndarray:
    """Share of non-zero values among available ones, per row (COINr Non_Zero)."""
    avail = (~np.isnan(X)).sum(axis=1)
    zeros = (X == 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - zeros / avail
