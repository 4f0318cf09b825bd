"""OBX-5 observation values by OBX-2 value type (HL7 table 0125).

>>> from rhip.exchange.values import structured_numeric
>>> structured_numeric(["<", "0.5"]), structured_numeric(["", "1", ":", "40"])
(('<', 0.5, None), (None, None, '1:40'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rhip.exchange.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    ContentError,
)
from rhip.exchange.hl7v2 import Seg

NUMERIC = ("NM", "SN")
CODED = ("CWE", "CE", "CNE")
TEXT = ("ST", "TX", "FT", "ID", "IS", "DT", "TM", "DTM", "TS")
COMPARATORS = ("<", ">", "<=", ">=", "=", "<>")
_NM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True, slots=True)
class Value:
    type: str
    num: float | None = None
    comparator: str | None = None
    text: str | None = None
    code: str | None = None


def read_value(obx: Seg) -> Value:
    """The value of an OBX, checked against its type; ContentError (AE) when it does not fit."""
    vtype, first = obx.gets(2, 5)  # OBX-5's first component: NM's whole value
    vtype = vtype.upper()
    present = obx.reps(5) > 0
    if not vtype:
        if present:
            raise ContentError(
                "OBX-2 value type is missing while OBX-5 has a value",
                location=obx.loc(2),
                hl7_code=REQUIRED_FIELD_MISSING,
            )
        return Value("ST")
    if vtype not in NUMERIC + CODED + TEXT:
        raise ContentError(
            f"OBX-2 value type {vtype!r} is not supported (NM, SN, ST, TX, FT, CWE, CE, …)",
            location=obx.loc(2),
            hl7_code=TABLE_VALUE_NOT_FOUND,
        )
    if vtype == "NM":
        # a non-number is kept as text for the quality rule validity.numeric, which rejects it
        # (AE 102 at OBX-5) by default and names it in the scorecard
        return nm_value(first)
    if vtype == "SN":
        parts = [obx.get(5, c) for c in (1, 2, 3, 4)]
        try:
            comparator, num, text = structured_numeric(parts)
        except ValueError as exc:
            raise ContentError(
                f"OBX-5 structured numeric {'^'.join(parts).rstrip('^')!r}: {exc}",
                location=obx.loc(5),
                hl7_code=DATA_TYPE_ERROR,
            ) from None
        return Value(vtype, num=num, comparator=comparator, text=text)
    if vtype in CODED:
        code, display = obx.get(5, 1), obx.get(5, 2)
        return Value(vtype, text=(display or code) or None, code=code[:64] or None)
    lines = [obx.get(5, rep=r) for r in range(1, obx.reps(5) + 1)]
    return Value(vtype, text="\n".join(lines) or None)


def structured_numeric(parts: list[str]) -> tuple[str | None, float | None, str | None]:
    """SN ``comparator^num1^separator^num2``: a number with comparator, or a range/ratio text."""
    parts = [*parts, "", "", "", ""][:4]
    comparator, num1, sep, num2 = (p.strip() for p in parts)
    if comparator and comparator not in COMPARATORS:
        raise ValueError(f"comparator {comparator!r} is not one of {' '.join(COMPARATORS)}")
    if not num1:
        raise ValueError("the first number is missing")
    first = _float(num1)
    if not sep and not num2:
        return comparator or None, first, None
    if sep not in ("-", "+", "/", ".", ":"):
        raise ValueError(f"separator {sep!r} is not one of - + / . :")
    _float(num2)
    return comparator or None, None, f"{num1}{sep}{num2}"


def _float(text: str) -> float:
    # HL7 NM: an optional sign, digits and an optional decimal point; no exponent, no separators
    if not _NM.match(text):
        raise ValueError(f"{text[:40]!r} is not a number")
    return float(text)


@lru_cache(maxsize=8192)
def nm_value(first: str) -> Value:
    """An NM value from OBX-5's first component (stripped); a non-number is kept as text. Results
    repeat (a few thousand values make most of a lab's), and a Value is immutable: remembered."""
    return Value("NM", num=number_or_none(first), text=first or None)


def number_or_none(raw: str) -> float | None:
    try:
        return _float(raw) if raw else None
    except ValueError:
        return None
