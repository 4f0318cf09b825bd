"""GB 11643 resident IDs and GB 32100 credit codes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhip.kernel.errors import InvalidInput
from rhip.kernel.ids import (
    check_digit,
    is_valid_resident_id,
    make_credit_code,
    mask,
    upgrade_15,
    validate_credit_code,
    validate_resident_id,
)

# 440304 福田区, born 1990-05-17, sequence 123 (odd: male)
VALID = "440304199005171231"[:17]
VALID = VALID + check_digit(VALID)


def test_valid_id_reads_birth_date_sex_and_region() -> None:
    info = validate_resident_id(VALID)
    assert info.birth_date == dt.date(1990, 5, 17)
    assert info.sex == "male"
    assert info.region_code == "440304"
    assert info.warnings == ()


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (VALID[:-1] + ("0" if VALID[-1] != "0" else "1"), "check digit"),
        ("44030419900517123", "18 characters"),
        ("4403041990051712A1", "17 digits"),
    ],
)
def test_invalid_id_names_the_reason(number: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_resident_id(number, expression="Patient.identifier[0].value")
    assert reason in exc.value.message
    assert exc.value.expression == "Patient.identifier[0].value"
    assert number not in exc.value.message  # never echo an ID in clear


def _with_check(first17: str) -> str:
    return first17 + check_digit(first17)


def test_impossible_and_future_birth_dates_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="not a calendar date"):
        validate_resident_id(_with_check("44030419900230123"))
    with pytest.raises(InvalidInput, match="not possible"):
        validate_resident_id(_with_check("44030420990101123"))


def test_unknown_province_is_an_error_unknown_county_a_warning() -> None:
    with pytest.raises(InvalidInput, match="province code 99"):
        validate_resident_id(_with_check("99030419900101123"))
    info = validate_resident_id(_with_check("44039919900101123"))
    assert info.warnings and "440399" in info.warnings[0]


def test_abolished_county_code_is_accepted_without_warning() -> None:
    # 440302 沙头角区办事处 existed 1983–1990: an ID issued then keeps it for life
    info = validate_resident_id(_with_check("44030219850101123"))
    assert info.warnings == ()


def test_fifteen_digit_legacy_id_is_upgraded() -> None:
    assert upgrade_15("110105491231002") == "11010519491231002X"
    assert validate_resident_id("110105491231002").number == "11010519491231002X"


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2024, 12, 31)),
    st.integers(0, 999),
    st.sampled_from(["440304", "110105", "310115", "510107"]),
)
def test_any_generated_id_validates_and_any_single_digit_change_fails(
    born: dt.date, seq: int, region: str
) -> None:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    number = first17 + check_digit(first17)
    info = validate_resident_id(number, today=dt.date(2025, 1, 1))
    assert info.birth_date == born
    assert info.sex == ("male" if seq % 2 else "female")
    # ISO 7064 MOD 11-2 detects every single-digit substitution
    pos = seq % 17
    changed = first17[:pos] + str((int(first17[pos]) + 1) % 10) + first17[pos + 1 :]
    assert not is_valid_resident_id(changed + number[-1])


def test_credit_code_check_character() -> None:
    code = make_credit_code("91440300MA5ABCDE1")
    assert validate_credit_code(code) == code
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(InvalidInput, match="unified social credit code"):
        validate_credit_code(wrong, expression="Organization.identifier[0].value")


def test_mask_keeps_head_and_tail() -> None:
    assert mask("440304199005171234") == "4403**********1234"


def test_county_table_holds_current_and_abolished_codes() -> None:
    from rhip.kernel import regions

    by_code = {r.code: r for r in regions.counties()}
    assert by_code["440304"].current and by_code["440304"].name == "福田区"
    assert not by_code["440302"].current  # 沙头角区办事处, 1983–1990
    assert all(not code.endswith("00") for code in by_code)
