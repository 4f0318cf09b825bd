"""Normalisation (标准化) of the values the matcher compares: names, phones, addresses, dates.

Chinese names are folded to simplified characters (繁简转换, OpenCC ``t2s``) and keyed by toneless
pinyin (拼音, pypinyin), so 張偉, 张伟, 张玮 (a homophone) and ``ZHANG Wei`` all meet on
``zhangwei``.
Conversions are cached per character and applied once per distinct value, so a whole batch is
normalised set-based (``prepare``) while a single registration goes through the same functions.

>>> fold_name(" 張 偉 "), name_key("張偉"), name_key("ZHANG Wei"), name_key("曾国藩")
('张伟', 'zhangwei', 'zhangwei', 'zengguofan')
>>> phone_key("+86 138-0013-8000"), swap_day_month("1990-03-12")
('13800138000', '1990-12-03')
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata

import pandas as pd

# separators people type inside names: spaces, middle dots of minority names (阿依古丽·买买提)
_NAME_NOISE = re.compile(r"[\s·•・.\-_,，'’]+")
_NON_DIGIT = re.compile(r"\D+")
_ADDRESS_NOISE = re.compile(r"[\s,，、;；:：()（）#\-]+")
# a surname read differently from the character's everyday reading (多音字姓氏)
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "区": "ou", "朴": "piao", "查": "zha",
    "盖": "ge", "乐": "yue", "覃": "qin", "尉": "yu", "种": "chong", "缪": "miao", "翟": "zhai",
    "繁": "po", "万": "wan", "召": "shao", "长": "chang", "令": "ling", "重": "chong",
}  # fmt: skip
ADDRESS_PREFIXES = ("广东省", "广东", "深圳市", "深圳")


@functools.cache
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=65536)
def _simplified(ch: str) -> str:
    return _t2s().convert(ch)


@functools.lru_cache(maxsize=65536)
def _char_pinyin(ch: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(ch, style=Style.NORMAL, v_to_u=False)[0].replace("ü", "v")


def is_han(ch: str) -> bool:
    """Whether ``ch`` is a CJK unified ideograph (汉字), basic block or extension A."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def fold_name(raw: str | None) -> str:
    """A name folded for comparison: NFKC, separators removed, simplified characters, lower case.

    Latin (pinyin-only) names come back lower-case letters only: ``"ZHANG  Wei"`` → ``"zhangwei"``.
    """
    if not raw:
        return ""
    text = _NAME_NOISE.sub("", unicodedata.normalize("NFKC", raw))
    return "".join(_simplified(c) if is_han(c) else c.lower() for c in text)


def is_latin_name(folded: str) -> bool:
    return bool(folded) and not any(is_han(c) for c in folded)


def name_key(raw: str | None) -> str:
    """Toneless pinyin of a name (surname reading for the first character), or its Latin letters."""
    folded = fold_name(raw)
    parts = []
    for i, ch in enumerate(folded):
        if is_han(ch):
            parts.append(SURNAME_READINGS.get(ch, "") if i == 0 else "")
            parts[-1] = parts[-1] or _char_pinyin(ch)
        elif ch.isalpha():
            parts.append("v" if ch == "ü" else ch)
    return "".join(parts)


def phone_key(raw: str | None) -> str:
    """Digits of a phone number without the +86 / 0086 country prefix; "" if none."""
    digits = _NON_DIGIT.sub("", raw or "")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def address_key(raw: str | None) -> str:
    """An address folded for exact comparison: simplified, no punctuation, no 广东省深圳市."""
    if not raw:
        return ""
    text = _ADDRESS_NOISE.sub("", unicodedata.normalize("NFKC", raw))
    text = "".join(_simplified(c) if is_han(c) else c.lower() for c in text)
    for prefix in ADDRESS_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def iso_date(value: object) -> str:
    """A birth date as ``YYYY-MM-DD`` from a date, ``YYYY-MM-DD`` or ``YYYYMMDD``; "" if empty."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    text = str(value).strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text[:10]


def swap_day_month(iso: str) -> str:
    """The date with day and month exchanged (日月颠倒), or "" when that is not a date."""
    if len(iso) != 10 or iso[5:7] == iso[8:10]:
        return ""
    swapped = f"{iso[:4]}-{iso[8:10]}-{iso[5:7]}"
    try:
        dt.date.fromisoformat(swapped)
    except ValueError:
        return ""
    return swapped


MATCH_COLUMNS = (
    "name_folded",
    "name_pinyin",
    "birth_date",
    "sex",
    "phone",
    "address_key",
    "district",
)


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The match columns of a batch of registrations, each function run once per distinct value.

    Reads ``name``, ``gender``, ``birth_date``, ``phone``, ``address``, ``district_code`` (missing
    columns count as empty) and returns ``MATCH_COLUMNS`` as plain-``str`` object columns.
    """
    n = len(frame)

    def col(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series([""] * n, index=frame.index, dtype=object)
        return frame[name].astype(object).where(frame[name].notna(), "")

    def mapped(series: pd.Series, fn) -> pd.Series:
        uniques = pd.unique(series)
        table = {u: fn(u) for u in uniques}
        return series.map(table).astype(object)

    names = col("name")
    out = pd.DataFrame(index=frame.index)
    folded = mapped(names, fold_name)
    out["name_pinyin"] = mapped(folded, name_key)
    # a pinyin-only name has no characters to compare: it meets others on name_pinyin alone
    out["name_folded"] = mapped(folded, lambda f: "" if is_latin_name(f) else f)
    out["birth_date"] = mapped(col("birth_date"), iso_date)
    out["sex"] = mapped(col("gender"), lambda g: g if g in ("male", "female") else "")
    out["phone"] = mapped(col("phone"), phone_key)
    out["address_key"] = mapped(col("address"), address_key)
    out["district"] = col("district_code").astype(str)
    return out[list(MATCH_COLUMNS)]
