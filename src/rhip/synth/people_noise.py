"""The noise model of synthetic registrations (登记噪声): what clerks and card readers get wrong.

Each kind is drawn independently per registration at the rate ``NoiseSpec`` gives; the kinds
applied are listed in the ``noise`` column (``name_char+missing_id``). Conversions run once per
distinct value (names repeat), the rest are numpy masks.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rhip.synth.names import GIVEN_FEMALE, GIVEN_MALE, HOMOPHONE_POOL, SIMILAR_SHAPE, SURNAMES

if TYPE_CHECKING:
    from rhip.synth.people import NoiseSpec

# pinyin surnames whose reading differs from the character's common one
_SURNAME_PINYIN = {"曾": "zeng", "覃": "qin", "单": "shan", "解": "xie", "仇": "qiu", "区": "ou"}


@functools.cache
def homophones() -> dict[str, str]:
    """Character → other characters with the same toneless pinyin (同音字), from the name pools."""
    from pypinyin import lazy_pinyin

    chars = set(GIVEN_MALE + GIVEN_FEMALE + HOMOPHONE_POOL) | {
        s for s, _ in SURNAMES if len(s) == 1
    }
    by_sound: dict[str, set[str]] = defaultdict(set)
    for ch in chars:
        by_sound[lazy_pinyin(ch)[0]].add(ch)
    return {ch: "".join(sorted(by_sound[lazy_pinyin(ch)[0]] - {ch})) for ch in sorted(chars)}


def apply(
    rng: np.random.Generator, regs: pd.DataFrame, residents: pd.DataFrame, spec: NoiseSpec
) -> None:
    """Apply ``spec`` to ``regs`` in place and record the kinds in ``regs['noise']``."""
    n = len(regs)
    labels: list[tuple[str, np.ndarray]] = []

    def draw(rate: float) -> np.ndarray:
        return rng.random(n) < rate

    mask = draw(spec.name_char)
    regs.loc[mask, "name"] = _one_char(rng, regs.loc[mask, "name"].to_numpy())
    labels.append(("name_char", mask))

    pinyin = draw(spec.pinyin_only)
    trad = draw(spec.traditional) & ~pinyin
    regs.loc[trad, "name"] = _mapped(regs.loc[trad, "name"], _traditional)
    styles = rng.integers(0, 3, n)
    if pinyin.any():
        sub = regs.loc[pinyin, ["name", "_surname_len"]].assign(style=styles[pinyin])
        regs.loc[pinyin, "name"] = [_pinyin_name(*row) for row in sub.itertuples(index=False)]
    labels += [("pinyin_only", pinyin), ("traditional", trad)]

    born = regs["birth_date"].to_numpy().astype(str)
    month = pd.Series(born).str[5:7].to_numpy()
    day = pd.Series(born).str[8:10].to_numpy()
    swappable = (day.astype(int) <= 12) & (month != day)
    share = max(swappable.mean(), 1e-9)
    swap = swappable & draw(min(1.0, spec.swap_day_month / share))
    regs.loc[swap, "birth_date"] = (
        pd.Series(born).str[:5].to_numpy()[swap] + day[swap] + "-" + month[swap]
    )
    labels.append(("swap_day_month", swap))

    missing = draw(spec.missing_id)
    regs.loc[missing, "resident_id"] = None
    labels.append(("missing_id", missing))

    changed = draw(spec.phone_changed)
    fresh = np.char.add("139", np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8))
    regs.loc[changed, "phone"] = fresh[changed]
    no_phone = draw(spec.missing_phone) & ~changed
    regs.loc[no_phone, "phone"] = None
    no_address = draw(spec.missing_address)
    regs.loc[no_address, "address"] = None
    labels += [
        ("phone_changed", changed),
        ("missing_phone", no_phone),
        ("missing_address", no_address),
    ]

    # not noise: half the clerks leave out the province (广东省) when typing an address
    short = draw(0.5) & ~no_address
    regs.loc[short, "address"] = regs.loc[short, "address"].str.removeprefix("广东省")
    regs["noise"] = _labels(n, labels)
    del regs["_surname_len"]


def _one_char(rng: np.random.Generator, names: np.ndarray) -> list[str]:
    """Replace one character of each name by a homophone or a similar shape (when one exists)."""
    sounds = homophones()
    out = []
    picks = rng.random((len(names), 3))
    for name, (where, kind, which) in zip(names, picks, strict=True):
        chars = list(name)
        order = np.roll(np.arange(len(chars)), -int(where * len(chars)))
        for pos in order:
            tables = (sounds, SIMILAR_SHAPE) if kind < 0.5 else (SIMILAR_SHAPE, sounds)
            options = tables[0].get(chars[pos]) or tables[1].get(chars[pos])
            if options:
                chars[pos] = options[int(which * len(options))]
                break
        out.append("".join(chars))
    return out


def _mapped(series: pd.Series, fn) -> pd.Series:
    table = {v: fn(v) for v in pd.unique(series)}
    return series.map(table)


@functools.cache
def _s2t():
    import opencc

    return opencc.OpenCC("s2t")


def _traditional(name: str) -> str:
    return _s2t().convert(name)


def _pinyin_name(name: str, surname_len: int, style: int) -> str:
    """``ZHANG WEIMING`` / ``Zhang Weiming`` / ``ZHANG Weiming``: how pinyin-only cards read."""
    from pypinyin import lazy_pinyin

    syllables = [s.replace("ü", "v") for s in lazy_pinyin(name)]
    if name[0] in _SURNAME_PINYIN:
        syllables[0] = _SURNAME_PINYIN[name[0]]
    family, given = "".join(syllables[:surname_len]), "".join(syllables[surname_len:])
    if style == 0:
        return f"{family} {given}".upper()
    if style == 1:
        return f"{family.title()} {given.title()}"
    return f"{family.upper()} {given.title()}"


def _labels(n: int, labels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    for name, mask in labels:
        out[mask] = np.where(out[mask] == "", name, out[mask] + "+" + name)
    return out
