"""Synthetic residents and registrations: valid IDs, consistent sex, noise as specified, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from rhip.kernel import regions
from rhip.kernel.ids import validate_resident_id
from rhip.kernel.regions import SHENZHEN
from rhip.synth.people import NoiseSpec, generate


def _institutions(n: int = 40) -> pd.DataFrame:
    types = ["public_hospital", "private_hospital", "chc", "clinic", "lab"]
    codes = list(SHENZHEN)
    return pd.DataFrame({"id": [f"o{i}" for i in range(n)],
                         "credit_code": [f"C{i:017d}" for i in range(n)],
                         "type": [types[i % 5] for i in range(n)],
                         "district_code": [codes[i % len(codes)] for i in range(n)]})  # fmt: skip


@pytest.fixture(scope="module")
def city() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(4000, _institutions(), seed=5)


def test_deterministic_by_seed() -> None:
    a = generate(300, _institutions(), seed=1)
    b = generate(300, _institutions(), seed=1)
    c = generate(300, _institutions(), seed=2)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[0]["resident_id"].equals(c[0]["resident_id"])


def test_residents_have_valid_unique_ids_matching_sex_and_birth(city) -> None:
    residents, _ = city
    assert residents["resident_id"].is_unique
    for row in residents.sample(400, random_state=0).itertuples():
        info = validate_resident_id(row.resident_id)
        assert (info.sex, info.birth_date.isoformat()) == (row.gender, row.birth_date)
    provinces = residents["resident_id"].str[:2]
    assert provinces.nunique() > 15 and (provinces == "44").mean() < 0.6  # a migrant city
    historic = [
        c for c in residents["birthplace_code"].unique()[:2000] if not regions.lookup(c).current
    ]
    assert historic  # some IDs keep an abolished county code


def test_names_phones_addresses_look_real(city) -> None:
    residents, _ = city
    given_len = residents["name"].str.len() - residents["surname"].str.len()
    assert set(given_len.unique()) == {1, 2} and 0.15 < (given_len == 1).mean() < 0.4
    assert residents["surname"].value_counts().index[0] in "王李张刘陈"
    assert residents["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert residents["district_code"].isin(list(SHENZHEN)).all()
    assert residents["address"].str.contains("深圳市").all()


def test_registrations_carry_truth_and_the_noise_rates(city) -> None:
    residents, regs = city
    assert regs["true_person"].isin(residents["person_key"]).all()
    assert regs["registered_at"].is_monotonic_increasing
    assert not regs.duplicated(["true_person", "institution_id"]).any()
    kinds = ("missing_id", "name_char", "swap_day_month", "pinyin_only", "phone_changed")
    share = {k: regs["noise"].str.contains(k).mean() for k in kinds}
    spec = NoiseSpec()
    for kind, rate in share.items():
        assert abs(rate - getattr(spec, kind)) < 0.012, (kind, rate)
    assert regs.loc[regs["noise"].str.contains("missing_id"), "resident_id"].isna().all()
    pinyin = regs.loc[regs["noise"].str.contains("pinyin_only"), "name"]
    assert pinyin.str.fullmatch(r"[A-Za-z ]+").all()
    truth = regs.merge(residents, left_on="true_person", right_on="person_key")
    clean = truth["noise"] == ""
    assert (truth.loc[clean, "name_x"] == truth.loc[clean, "name_y"]).all()
    swapped = truth["noise"].str.contains("swap_day_month")
    b_x, b_y = truth.loc[swapped, "birth_date_x"], truth.loc[swapped, "birth_date_y"]
    assert (b_x.str[5:7] == b_y.str[8:10]).all() and (b_x.str[8:10] == b_y.str[5:7]).all()


def test_hundred_thousand_registrations_in_seconds() -> None:
    generate(200, _institutions(), seed=0)  # warm caches (region table, pinyin)
    started = time.perf_counter()
    _, regs = generate(43_000, _institutions(100), seed=3, noise=NoiseSpec.bench())
    elapsed = time.perf_counter() - started
    assert len(regs) >= 100_000
    assert elapsed < 4.0, elapsed
    assert np.isclose(regs["noise"].str.contains("traditional").mean(), 0.0)
