"""Normalisation: folding, pinyin keys, phones, dates; properties with hypothesis."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from rhip.identity.normalise import (
    address_key,
    fold_name,
    iso_date,
    name_key,
    phone_key,
    prepare,
    swap_day_month,
)
from rhip.synth.names import GIVEN_FEMALE, GIVEN_MALE, SURNAMES
from rhip.synth.people_noise import _pinyin_name, _traditional

HAN_NAMES = st.builds(
    lambda s, g: s + g,
    st.sampled_from([s for s, _ in SURNAMES]),
    st.text(alphabet=GIVEN_MALE + GIVEN_FEMALE, min_size=1, max_size=2),
)


def test_traditional_characters_fold_to_simplified() -> None:
    assert fold_name("張偉") == "张伟"
    assert fold_name("陳 麗華") == "陈丽华"
    assert fold_name("阿依古丽·买买提") == "阿依古丽买买提"


def test_pinyin_key_joins_homophones_pinyin_only_and_surname_readings() -> None:
    assert name_key("张伟") == name_key("張偉") == name_key("张玮") == "zhangwei"
    assert name_key("ZHANG Wei") == name_key("zhang  wei") == "zhangwei"
    assert name_key("曾伟") == "zengwei"  # surname reading, not ceng
    assert name_key("吕丽") == "lvli"
    assert name_key("李伟") != name_key("王伟")


def test_phone_address_and_date_keys() -> None:
    assert phone_key("+86 138-0013-8000") == phone_key("008613800138000") == "13800138000"
    assert phone_key("") == ""
    assert address_key("广东省深圳市 南山区 科苑路8号") == address_key("深圳市南山区科苑路8号")
    assert iso_date("19900312") == "1990-03-12"
    assert swap_day_month("1990-03-12") == "1990-12-03"
    assert swap_day_month("1990-03-25") == ""  # no 25th month
    assert swap_day_month("1990-05-05") == ""


@given(HAN_NAMES)
def test_folding_is_idempotent_and_traditional_round_trips(name: str) -> None:
    assert fold_name(fold_name(name)) == fold_name(name)
    assert fold_name(_traditional(name)) == name
    assert name_key(_traditional(name)) == name_key(name)


@given(HAN_NAMES, st.integers(0, 2))
def test_pinyin_only_spelling_meets_the_characters(name: str, style: int) -> None:
    surname_len = 2 if name[:2] in {s for s, _ in SURNAMES if len(s) == 2} else 1
    assert name_key(_pinyin_name(name, surname_len, style)) == name_key(name)


def test_prepare_is_set_based_and_blanks_latin_characters() -> None:
    frame = pd.DataFrame(
        {
            "name": ["張偉", "ZHANG Wei", None],
            "gender": ["male", "male", "x"],
            "birth_date": ["1990-03-12", "19900312", None],
            "phone": ["+8613800138000", None, "13800138000"],
            "district_code": ["440305", "440305", None],
        }
    )
    out = prepare(frame)
    assert out["name_folded"].tolist() == ["张伟", "", ""]
    assert out["name_pinyin"].tolist() == ["zhangwei", "zhangwei", ""]
    assert out["birth_date"].tolist() == ["1990-03-12", "1990-03-12", ""]
    assert out["sex"].tolist() == ["male", "male", ""]
    assert out["phone"].tolist() == ["13800138000", "", "13800138000"]
