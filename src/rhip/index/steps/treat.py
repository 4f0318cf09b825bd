"""Outlier treatment (异常值处理), following COINr's `Treat` exactly.

Default rule per indicator: if |skew| ≥ 2 AND kurtosis ≥ 3.5 (COINr/e1071 type-2 formulas),
Winsorise one extreme point at a time on the side of the skew (the point takes the value of the
next one) until the rule passes or `winmax` points are treated; if it still fails, apply the
COIN-Tool log transform to the *original* column instead. Treatment is not direction-aware,
as in COINr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rhip.index.steps.base import Method, NoParams, Params, register

TREATMENTS: dict[str, Method] = {}


class SkewKurtParams(Params):
    winmax: int | None = 5  # None = no limit
    skew_thresh: float = 2.0
    kurt_thresh: float = 3.5
    log: str = "log_CT"  # second stage: log_CT, log_CT_plus, log_CT_orig or none
    combine: bool = False  # apply the log to the Winsorised column instead of the original


class WinsoriseParams(Params):
    winmax: int | None = 5
    skew_thresh: float = 2.0
    kurt_thresh: float = 3.5


@dataclass
class Treated:
    """Result for one column: values plus what was done (for the log and the workbook)."""

    x: np.ndarray
    skew: float = float("nan")
    kurt: float = float("nan")
    n_winsorised: int = 0
    transform: str = ""
    passing: bool | None = None


def skew(x: np.ndarray) -> float:
    """Skewness, e1071 type 2 (as COINr::skew)."""
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 3:
        return float("nan")
    x = x - x.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.sqrt(n) * np.sum(x**3) / np.sum(x**2) ** 1.5
    return float(y * np.sqrt(n * (n - 1)) / (n - 2))


def kurt(x: np.ndarray) -> float:
    """Excess kurtosis, e1071 type 2 (as COINr::kurt)."""
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 4:
        return float("nan")
    x = x - x.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = n * np.sum(x**4) / np.sum(x**2) ** 2
    return float(((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3)))


def passes(x: np.ndarray, skew_thresh: float, kurt_thresh: float) -> bool | None:
    """COINr check_SkewKurt: pass if |skew| < thresh OR kurt < thresh (None if undefined)."""
    s, k = skew(x), kurt(x)
    a = None if np.isnan(s) else abs(s) < skew_thresh
    b = None if np.isnan(k) else k < kurt_thresh
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def winsorise(
    x: np.ndarray, winmax: int | None, skew_thresh: float, kurt_thresh: float
) -> tuple[np.ndarray, int]:
    """COINr winsorise(): the count is the size of the current tied extreme on each side."""
    x = x.copy()
    ok = passes(x, skew_thresh, kurt_thresh)
    n_hi = n_lo = 0
    while ok is False and (winmax is None or n_hi + n_lo < winmax):
        finite = x[~np.isnan(x)]
        if skew(x) >= 0:
            top = np.nanmax(x)
            idx = x == top
            rest = finite[finite != top]
            if rest.size == 0:
                break
            x[idx] = rest.max()
            n_hi = int(idx.sum())
        else:
            bottom = np.nanmin(x)
            idx = x == bottom
            rest = finite[finite != bottom]
            if rest.size == 0:
                break
            x[idx] = rest.min()
            n_lo = int(idx.sum())
        ok = passes(x, skew_thresh, kurt_thresh)
    return x, n_hi + n_lo


def log_transform(x: np.ndarray, kind: str) -> np.ndarray:
    """COINr log_CT family."""
    lo, hi = np.nanmin(x), np.nanmax(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "log_CT":
            return np.log(x - lo + 0.01 * (hi - lo))
        if kind == "log_CT_orig":
            return np.log(x - lo + 1)
        if kind == "log_CT_plus":
            a = 0.01 * (hi - lo)
            return np.log(x - lo + a) if skew(x) > 0 else -np.log(hi + a - x)
    raise ValueError(f"unknown log transform {kind!r}")


@register(TREATMENTS, "skew_kurt", SkewKurtParams)
def t_skew_kurt(x: np.ndarray, p: SkewKurtParams) -> Treated:
    """COINr default: Winsorise up to winmax points, then log transform if still failing."""
    out = Treated(x=x, skew=skew(x), kurt=kurt(x))
    ok = passes(x, p.skew_thresh, p.kurt_thresh)
    out.passing = ok
    if ok is not False:
        return out
    xw, nwin = winsorise(x, p.winmax, p.skew_thresh, p.kurt_thresh)
    out.x, out.n_winsorised = xw, nwin
    ok = passes(xw, p.skew_thresh, p.kurt_thresh)
    if ok is None:  # COINr returns the untreated column when the check becomes undefined
        return Treated(x=x, skew=out.skew, kurt=out.kurt)
    if ok is False and p.log != "none":
        out.x = log_transform(xw if p.combine else x, p.log)
        out.transform = p.log
        out.n_winsorised = nwin if p.combine else 0
        ok = passes(out.x, p.skew_thresh, p.kurt_thresh)
    out.passing = ok
    return out


@register(TREATMENTS, "winsorise", WinsoriseParams)
def t_winsorise(x: np.ndarray, p: WinsoriseParams) -> Treated:
    """Winsorisation only (no log stage)."""
    xw, nwin = winsorise(x, p.winmax, p.skew_thresh, p.kurt_thresh)
    return Treated(
        x=xw,
        skew=skew(x),
        kurt=kurt(x),
        n_winsorised=nwin,
        passing=passes(xw, p.skew_thresh, p.kurt_thresh),
    )


class LogParams(Params):
    kind: str = "log_CT"


@register(TREATMENTS, "log", LogParams)
def t_log(x: np.ndarray, p: LogParams) -> Treated:
    """Always log-transform (COIN-Tool log)."""
    return Treated(x=log_transform(x, p.kind), skew=skew(x), kurt=kurt(x), transform=p.kind)


@register(TREATMENTS, "none", NoParams)
def t_none(x: np.ndarray, p: NoParams) -> Treated:
    """No treatment."""
    return Treated(x=x)
