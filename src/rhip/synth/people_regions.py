"""Birthplaces (出生地) for synthetic residents: county codes of all China, current and historic.

Shenzhen is a migrant city: most adults were born elsewhere, above all in Guangdong, Hunan,
Guangxi, Hubei, Jiangxi, Sichuan and Henan (shares below are rounded from the 2020 census'
origin of Shenzhen's migrant population). A resident ID keeps the county code of its first
registration, so a few residents carry a code abolished since (``rhip.kernel.regions``).
"""

from __future__ import annotations

import functools

import numpy as np

from rhip.kernel import regions

# province code → share of Shenzhen residents born there (percent, rounded)
PROVINCE_SHARES = {
    "44": 42.0, "43": 12.0, "45": 7.5, "42": 6.5, "36": 5.5, "51": 4.5, "41": 4.5, "35": 3.0,
    "50": 2.0, "61": 1.2, "34": 1.2, "37": 1.0, "52": 1.0, "53": 0.8, "32": 0.8, "33": 0.8,
    "13": 0.6, "23": 0.5, "22": 0.4, "21": 0.5, "14": 0.5, "46": 0.6, "11": 0.3, "12": 0.2,
    "31": 0.3, "15": 0.2, "62": 0.4, "63": 0.1, "64": 0.1, "65": 0.2, "54": 0.05,
}  # fmt: skip


@functools.cache
def county_codes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Current county-level codes per province, and every historic (abolished) county code."""
    current: dict[str, list[str]] = {}
    historic: list[str] = []
    for region in regions.counties():
        if region.current:
            current.setdefault(region.code[:2], []).append(region.code)
        else:
            historic.append(region.code)
    arrays = {p: np.array(sorted(c)) for p, c in current.items()}
    return arrays, np.array(sorted(historic))


def draw_birthplaces(rng: np.random.Generator, n: int, historic_share: float = 0.03) -> np.ndarray:
    """``n`` birthplace codes drawn by province share; ``historic_share`` of them abolished."""
    current, historic = county_codes()
    provinces = [p for p in PROVINCE_SHARES if p in current]
    shares = np.array([PROVINCE_SHARES[p] for p in provinces])
    which = rng.choice(len(provinces), size=n, p=shares / shares.sum())
    out = np.empty(n, dtype="<U6")
    for i, prov in enumerate(provinces):
        rows = np.flatnonzero(which == i)
        out[rows] = rng.choice(current[prov], size=len(rows))
    old = np.flatnonzero(rng.random(n) < historic_share)
    out[old] = rng.choice(historic, size=len(old))
    return out
