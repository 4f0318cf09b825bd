"""National identifiers: resident ID (GB 11643-1999) and unified social credit code (GB 32100-2015).

The check-digit arithmetic and the GB/T 2260 table come from python-stdnum; what is rhip's own is
the policy: an unknown or since-abolished county code is a *warning* (an ID keeps the code of the
place of first registration), while a bad check digit, an impossible or future birth date, or an
unknown province is an error.

>>> info = validate_resident_id("11010519491231002X")
>>> info.number, info.birth_date.isoformat(), info.sex, info.warnings
('11010519491231002X', '1949-12-31', 'female', ())
>>> upgrade_15("110105491231002")
'11010519491231002X'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from rhip.kernel import clock, regions
from rhip.kernel.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ResidentIdInfo:
    number: str  # 18 characters, upper-case X
    birth_date: dt.date
    sex: str  # "male" | "female" (FHIR administrative gender), from the 17th digit
    region_code: str  # the six-digit GB/T 2260 code of first registration
    warnings: tuple[str, ...] = ()


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    return ric.calc_check_digit(first17 + "0")


def upgrade_15(number: str) -> str:
    """Upgrade a legacy 15-digit ID (born 19xx, no check digit) to its 18-character form."""
    if len(number) != 15 or not number.isdigit():
        raise InvalidInput(f"{number!r} is not a 15-digit legacy resident ID", code="value")
    first17 = number[:6] + "19" + number[6:]
    return first17 + check_digit(first17)


def validate_resident_id(
    value: str, *, expression: str = "identifier", today: dt.date | None = None
) -> ResidentIdInfo:
    """Check a resident ID (18 characters, or 15 digits upgraded) and read what it encodes.

    Raises InvalidInput naming the reason; returns warnings for an unknown county code.
    """
    number = ric.compact(value or "")
    if len(number) == 15:
        number = upgrade_15(number)
    if len(number) != 18:
        raise _bad(value, f"must have 18 characters, has {len(number)}", expression)
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise _bad(value, "must be 17 digits and a digit or X", expression)
    if number[17] != check_digit(number[:17]):
        raise _bad(value, "check digit does not match (ISO 7064 MOD 11-2)", expression)
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        raise _bad(value, f"birth date {number[6:14]} is not a calendar date", expression) from None
    if born > (today or clock.today_cst()) or born.year < 1870:
        raise _bad(value, f"birth date {born.isoformat()} is not possible", expression)
    if regions.province_name(number[:2]) is None:
        raise _bad(value, f"province code {number[:2]} does not exist (GB/T 2260)", expression)
    warnings: list[str] = []
    if regions.lookup(number[:6]) is None:
        warnings.append(f"county code {number[:6]} is not in GB/T 2260 (kept: may be historic)")
    sex = "male" if int(number[16]) % 2 else "female"
    return ResidentIdInfo(number, born, sex, number[:6], tuple(warnings))


def is_valid_resident_id(value: str) -> bool:
    try:
        validate_resident_id(value)
    except InvalidInput:
        return False
    return True


def validate_credit_code(value: str, *, expression: str = "identifier") -> str:
    """Check an 18-character unified social credit code (GB 32100-2015) and return it compacted."""
    try:
        return uscc.validate(value or "")
    except ValidationError as exc:
        raise InvalidInput(
            f"unified social credit code {value!r} is invalid: {exc.message}",
            expression=expression,
            code="value",
        ) from None


def make_credit_code(body17: str) -> str:
    """Append the GB 32100 check character to 17 leading characters (for synthetic institutions)."""
    return body17 + uscc.calc_check_digit(body17)


def mask(value: str, keep_head: int = 4, keep_tail: int = 4) -> str:
    """Mask an identifier for pages, listings and logs: ``4403**********1234``."""
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    return value[:keep_head] + "*" * (len(value) - keep_head - keep_tail) + value[-keep_tail:]


def _bad(value: str, reason: str, expression: str) -> InvalidInput:
    return InvalidInput(
        f"resident ID {mask(value or '')!s} is invalid: {reason}",
        expression=expression,
        code="value",
    )
