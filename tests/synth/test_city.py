"""The synthetic city: the model city's proportions, valid and unique credit codes, determinism."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from stdnum.cn import uscc

from rhip.kernel.regions import SHENZHEN
from rhip.registry import vocabulary
from rhip.registry.validation import check_institution
from rhip.synth.city import COUNTS, build_city


@pytest.fixture(scope="module")
def city():
    return build_city(42)


def test_counts_per_type_are_the_model_citys(city) -> None:
    counts = city.institutions["type"].value_counts().to_dict()
    assert counts["public_hospital"] == 75
    assert counts["private_hospital"] == 93
    assert counts["clinic"] == 1611
    assert counts["lab"] == 62
    assert 300 <= counts["chc"] <= 999  # several hundred
    assert counts["maternal_child"] >= 1 and counts["public_health"] >= 1
    assert counts == COUNTS


def test_districts_are_shenzhens_with_population(city) -> None:
    d = city.districts
    assert list(d["code"]) == list(SHENZHEN) and list(d["name"]) == list(SHENZHEN.values())
    assert d["population"].sum() > 17_000_000 and (d["parent_code"] == "440300").all()
    assert set(city.institutions["district_code"]) == set(SHENZHEN)


def test_every_credit_code_valid_and_unique_and_ids_unique(city) -> None:
    codes = city.institutions["credit_code"]
    assert codes.is_unique and city.institutions["id"].is_unique
    assert all(uscc.is_valid(c) for c in codes)
    assert city.institutions["name"].is_unique


def test_every_institution_passes_registry_validation(city) -> None:
    for row in city.institutions.sample(200, random_state=0).to_dict("records"):
        row = row | {
            "feeds": list(json.loads(row["feeds"])),
            "functions": list(json.loads(row["functions"])),
            "allow_cidrs": row["allow_cidrs"].split(","),
        }
        check_institution(row)  # raises on any problem


def test_vocabularies_grades_and_connection(city) -> None:
    df = city.institutions
    assert set(df["type"]) <= set(vocabulary.TYPES)
    assert set(df["connection_status"]) <= set(vocabulary.CONNECTION_STATUSES)
    hospitals = df["type"].isin(["public_hospital", "private_hospital", "maternal_child"])
    assert df.loc[hospitals, "grade"].isin(list(vocabulary.GRADES)).all()
    assert df.loc[~hospitals, "grade"].isna().all()
    assert (df["connection_status"] == "connected").mean() > 0.7  # mostly connected
    connected = df["connection_status"] == "connected"
    assert df.loc[connected, "connected_on"].notna().all()
    assert df.loc[~connected, "connected_on"].isna().all()
    assert (df.loc[df["connection_status"] == "not_connected", "feeds"] == "{}").all()
    assert (df["allow_cidrs"] == "127.0.0.0/8,::1/128").all()


def test_names_are_realistic(city) -> None:
    names = set(city.institutions["name"])
    assert {"深圳市人民医院", "深圳市南山区人民医院", "福田区华强北社区健康服务中心"} <= names
    assert {"深圳市疾病预防控制中心", "深圳市妇幼保健院"} <= names
    by_type = city.institutions.groupby("type")["name"]
    assert by_type.apply(lambda s: s.str.endswith("医学检验实验室").all())["lab"]
    assert by_type.apply(lambda s: s.str.endswith(("诊所", "门诊部")).all())["clinic"]


def test_chcs_are_run_by_their_districts_hospital(city) -> None:
    df = city.institutions.set_index("id")
    chc = df[df["type"] == "chc"]
    parents = df.loc[chc["part_of"]]
    assert (parents["type"] == "public_hospital").all()
    assert (parents["district_code"].to_numpy() == chc["district_code"].to_numpy()).all()
    positions = {i: n for n, i in enumerate(city.institutions["id"])}
    assert all(positions[p] < positions[c] for c, p in chc["part_of"].items())  # parents first


def test_same_seed_same_city_other_seed_other_city(city) -> None:
    pd.testing.assert_frame_equal(city.institutions, build_city(42).institutions)
    other = build_city(43).institutions
    assert set(other["credit_code"]).isdisjoint(set(city.institutions["credit_code"]))
    assert (other["type"].value_counts() == city.institutions["type"].value_counts()).all()
