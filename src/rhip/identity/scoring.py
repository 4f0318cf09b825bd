"""Fellegi–Sunter scoring (概率匹配): comparison levels, m/u probabilities, match weights.

A registration is reduced to a *match record*, the tuple of ``normalise.MATCH_COLUMNS``. Each
comparison puts a pair of records in one level; the pair's match weight is the sum over comparisons
of ``log2(m/u)`` for its level (0 when either side is empty). The same levels are written as SQL for
splink (``rhip.identity.dedupe``), so the m/u it estimates drop straight into ``MatchParameters``.

>>> p = MatchParameters.default()
>>> a = ("张伟", "zhangwei", "1990-03-12", "male", "13800138000", "", "440305")
>>> b = ("张玮", "zhangwei", "1990-12-03", "male", "13800138000", "", "440305")
>>> levels(a, b)
{'name': 'pinyin', 'birth_date': 'swapped', 'sex': 'exact', 'phone': 'exact', 'address': 'district'}
>>> p.weight(a, b) > p.auto_link
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from rhip.identity.normalise import swap_day_month

# match-record positions (normalise.MATCH_COLUMNS)
FOLDED, PINYIN, BIRTH, SEX, PHONE, ADDRESS, DISTRICT = range(7)

# (m, u) per level; m = P(level | same person), u = P(level | different people). Defaults are
# judgement from the noise seen in hospital registrations; `rhip mpi dedupe` replaces them.
DEFAULT_MU: dict[str, dict[str, tuple[float, float]]] = {
    "name": {
        "exact": (0.88, 0.0008),
        "pinyin": (0.08, 0.0004),  # homophone, traditional variant, pinyin-only
        "one_char": (0.03, 0.002),  # one character differs (similar shape 形近字, typo)
        "close": (0.005, 0.004),  # pinyin within two letters
        "else": (0.005, 0.9928),
    },
    "birth_date": {
        "exact": (0.965, 0.00004),
        "swapped": (0.025, 0.00003),  # 日月颠倒 day and month exchanged
        "one_part": (0.007, 0.004),  # two of year, month, day agree
        "else": (0.003, 0.99593),
    },
    "sex": {"exact": (0.995, 0.5), "else": (0.005, 0.5)},
    "phone": {"exact": (0.9, 0.0002), "else": (0.1, 0.9998)},
    "address": {
        "exact": (0.5, 0.002),
        "district": (0.3, 0.15),
        "else": (0.2, 0.848),
    },
}
COMPARISONS = tuple(DEFAULT_MU)


@dataclass(frozen=True)
class MatchParameters:
    """m/u per comparison level, the decision thresholds (in bits) and where they came from."""

    mu: dict[str, dict[str, tuple[float, float]]]
    auto_link: float = 18.0  # ≥ this: link to the candidate (自动关联)
    review: float = 8.0  # ≥ this and < auto_link: provisional record + review queue (人工审核)
    prior: float = 1e-4  # P(match) of a blocked candidate pair, for the reported probability
    source: str = "default"
    weights: dict[str, dict[str, float]] = field(init=False, repr=False, compare=False)
    _tables: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = {
            comp: {lvl: math.log2(max(m, 1e-9) / max(u, 1e-9)) for lvl, (m, u) in lv.items()}
            for comp, lv in self.mu.items()
        }
        object.__setattr__(self, "weights", table)
        object.__setattr__(self, "_tables", tuple(table[c] for c in COMPARISONS))

    @classmethod
    def default(cls) -> MatchParameters:
        return cls(DEFAULT_MU)

    def to_json(self) -> str:
        return json.dumps(
            {
                "mu": self.mu,
                "auto_link": self.auto_link,
                "review": self.review,
                "prior": self.prior,
                "source": self.source,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> MatchParameters:
        data = json.loads(text)
        mu = {c: {lvl: (mu[0], mu[1]) for lvl, mu in lv.items()} for c, lv in data["mu"].items()}
        merged = {c: {**DEFAULT_MU[c], **mu.get(c, {})} for c in DEFAULT_MU}
        return cls(merged, data["auto_link"], data["review"], data["prior"], data["source"])

    def weight(self, a: tuple, b: tuple) -> float:
        """The match weight of two match records (sum of log2(m/u) over comparisons)."""
        # written out rather than via levels(): this runs for every candidate on the hot path
        wn, wd, ws, wp, wa = self._tables
        total = 0.0
        level = name_level(a[FOLDED], a[PINYIN], b[FOLDED], b[PINYIN])
        if level:
            total += wn[level]
        level = date_level(a[BIRTH], b[BIRTH])
        if level:
            total += wd[level]
        if a[SEX] and b[SEX]:
            total += ws["exact" if a[SEX] == b[SEX] else "else"]
        if a[PHONE] and b[PHONE]:
            total += wp["exact" if a[PHONE] == b[PHONE] else "else"]
        level = address_level(a[ADDRESS], a[DISTRICT], b[ADDRESS], b[DISTRICT])
        if level:
            total += wa[level]
        return total

    def probability(self, weight: float) -> float:
        """P(same person | weight) given the prior, as $match reports it."""
        odds = math.log2(self.prior / (1 - self.prior)) + weight
        return 1.0 / (1.0 + 2.0 ** (-max(min(odds, 60.0), -60.0)))


def levels(a: tuple, b: tuple) -> dict[str, str | None]:
    """The level of each comparison for records ``a`` and ``b`` (None: a side is empty)."""
    return {
        "name": name_level(a[FOLDED], a[PINYIN], b[FOLDED], b[PINYIN]),
        "birth_date": date_level(a[BIRTH], b[BIRTH]),
        "sex": None if not (a[SEX] and b[SEX]) else ("exact" if a[SEX] == b[SEX] else "else"),
        "phone": None
        if not (a[PHONE] and b[PHONE])
        else "exact"
        if a[PHONE] == b[PHONE]
        else "else",
        "address": address_level(a[ADDRESS], a[DISTRICT], b[ADDRESS], b[DISTRICT]),
    }


def name_level(af: str, ap: str, bf: str, bp: str) -> str | None:
    if not (ap and bp):
        return None
    if af and af == bf:
        return "exact"
    if ap == bp:
        return "pinyin"
    if af and bf and len(af) == len(bf) and sum(x != y for x, y in zip(af, bf, strict=True)) == 1:
        return "one_char"
    if abs(len(ap) - len(bp)) <= 2 and edit_distance(ap, bp, limit=2) <= 2:
        return "close"
    return "else"


def date_level(a: str, b: str) -> str | None:
    if not (a and b):
        return None
    if a == b:
        return "exact"
    if a == swap_day_month(b):
        return "swapped"
    if (a[:4] == b[:4]) + (a[5:7] == b[5:7]) + (a[8:] == b[8:]) == 2:
        return "one_part"
    return "else"


def address_level(a: str, ad: str, b: str, bd: str) -> str | None:
    if a and b and a == b:
        return "exact"
    if not (ad and bd):
        return None if not (a and b) else "else"
    return "district" if ad == bd else "else"


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance, stopping early once every path exceeds ``limit``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]
