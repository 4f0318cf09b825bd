"""An independent, line-by-line Python transcription of COINr 1.1.x R code, for tests only.

Written from the R sources (R/denominate.R, impute.R, screen_units.R, treat.R, normalise.R,
aggregate.R) in plain pandas/Python loops, deliberately sharing no code with rhip.index, so the
engine's vectorised implementation is checked against a second reading of COINr.
"""

from __future__ import annotations

import math

import pandas as pd

ASEM = "/work/shared/data/coinr-asem/"


def load():
    meta = pd.read_csv(ASEM + "ASEM_iMeta.csv")
    data = pd.read_csv(ASEM + "ASEM_iData.csv")
    return meta, data


def ind_codes(meta):
    return list(meta.loc[meta["Type"] == "Indicator", "iCode"])


def denominate(data, meta):  # Denominate.data.frame with ScaleFactor 1
    out = data.copy()
    den = meta[(meta["Type"] == "Indicator") & meta["Denominator"].notna()]
    for code, dcol in zip(den["iCode"], den["Denominator"], strict=True):
        out[code] = data[code] / data[dcol]
    return out


def impute_group_mean(data, codes, group):  # i_mean_grp per column
    out = data.copy()
    for code in codes:
        means = data.groupby(group)[code].mean()
        filled = [
            means[g] if pd.isna(v) else v for v, g in zip(data[code], data[group], strict=True)
        ]
        out[code] = filled
    return out


def screen(data, codes, thresh):  # Screen byNA
    avail = 1 - data[codes].isna().sum(axis=1) / len(codes)
    return data[avail >= thresh].reset_index(drop=True)


def r_skew(v):
    x = [a for a in v if not math.isnan(a)]
    n = len(x)
    m = sum(x) / n
    d = [a - m for a in x]
    y = math.sqrt(n) * sum(a**3 for a in d) / (sum(a**2 for a in d) ** 1.5)
    return y * math.sqrt(n * (n - 1)) / (n - 2)


def r_kurt(v):
    x = [a for a in v if not math.isnan(a)]
    n = len(x)
    m = sum(x) / n
    d = [a - m for a in x]
    r = n * sum(a**4 for a in d) / (sum(a**2 for a in d) ** 2)
    return ((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))


def check(x):
    return abs(r_skew(x)) < 2 or r_kurt(x) < 3.5


def winsorise(x, winmax):
    x = list(x)
    imax, imin = [], []
    nwin = 0
    passing = check(x)
    while (not passing) and nwin < winmax:
        vals = [a for a in x if not math.isnan(a)]
        if r_skew(x) >= 0:
            top = max(vals)
            imax = [i for i, a in enumerate(x) if a == top]
            rest = max(a for i, a in enumerate(x) if i not in imax and not math.isnan(a))
            for i in imax:
                x[i] = rest
        else:
            bot = min(vals)
            imin = [i for i, a in enumerate(x) if a == bot]
            rest = min(a for i, a in enumerate(x) if i not in imin and not math.isnan(a))
            for i in imin:
                x[i] = rest
        nwin = len(imax) + len(imin)
        passing = check(x)
    return x


def treat(data, codes, winmax=5):  # Treat.numeric with winsorise then log_CT on original
    out = data.copy()
    for code in codes:
        x = list(data[code])
        if check(x):
            continue
        xw = winsorise(x, winmax)
        if check(xw):
            out[code] = xw
        else:
            lo = min(a for a in x if not math.isnan(a))
            hi = max(a for a in x if not math.isnan(a))
            out[code] = [math.log(a - lo + 0.01 * (hi - lo)) for a in x]
    return out


def normalise(data, codes, meta, how, a, b):
    out = data[["uCode"]].copy()
    direction = dict(zip(meta["iCode"], meta["Direction"], strict=False))
    for code in codes:
        x = data[code] * direction[code]
        if how == "minmax":
            out[code] = (x - x.min()) / (x.max() - x.min()) * (b - a) + a
        else:  # zscore, R sd() is the sample sd
            out[code] = (x - x.mean()) / x.std(ddof=1) * b + a
    return out


def aggregate(norm, meta, how):
    out = norm.copy()
    agg = meta[meta["Type"].isin(["Indicator", "Aggregate"])]
    weight = dict(zip(agg["iCode"], agg["Weight"], strict=True))
    for lev in range(2, int(agg["Level"].max()) + 1):
        kids = agg[agg["Level"] == lev - 1]
        for parent, grp in kids.groupby("Parent"):
            vals = []
            for _, row in out.iterrows():
                xs = [(row[c], weight[c]) for c in grp["iCode"] if not pd.isna(row[c])]
                if not xs:
                    vals.append(float("nan"))
                elif how == "amean":
                    vals.append(sum(v * w for v, w in xs) / sum(w for _, w in xs))
                else:  # gmean
                    vals.append(
                        math.exp(sum(w * math.log(v) for v, w in xs) / sum(w for _, w in xs))
                    )
            out[parent] = vals
    return out
