"""The synthetic model city (深圳 Shenzhen): districts and its institutions, deterministic by seed.

Proportions follow the city's published figures: 75 public hospitals, 93 private hospitals,
1,611 clinics and outpatient departments (诊所/门诊部), 62 third-party labs, several hundred
community health centres (社康中心, run by district hospitals: 院办院管), a maternal-child hospital
per district plus the city's, and the public-health bodies (疾控, 慢病, 急救, 血液中心 …).
Names, grades, credit codes (GB 32100, valid check characters) and connection status are
synthetic. Everything is drawn with numpy from one seed, per type from its own stream, so the same
seed gives the same city.

>>> city = build_city(7)
>>> int((city.institutions["type"] == "lab").sum()), len(city.districts)
(62, 9)
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhip.kernel.ids import make_credit_code
from rhip.kernel.regions import SHENZHEN

COUNTS = {
    "public_hospital": 75,
    "maternal_child": 10,
    "public_health": 24,
    "private_hospital": 93,
    "lab": 62,
    "clinic": 1611,
    "chc": 800,
}
ALLOW_CIDRS = "127.0.0.0/8,::1/128"  # demo institutions talk MLLP from this machine only
CITY_CODE = "440300"

# 第七次全国人口普查 (2020) resident population, rounded; 大鹏新区 (no GB/T 2260 code of its own)
# is counted in 龙岗区, from which it was carved.
POPULATION = {
    "440303": 1_143_800,
    "440304": 1_553_200,
    "440305": 1_795_800,
    "440306": 4_476_600,
    "440307": 4_135_300,
    "440308": 214_200,
    "440309": 2_528_900,
    "440310": 551_300,
    "440311": 1_095_300,
}
# 街道 subdistricts of each district (74 in all)
STREETS = {
    "440303": "桂园 黄贝 东门 翠竹 南湖 笋岗 东湖 莲塘 东晓 清水河",
    "440304": "园岭 南园 福田 沙头 香蜜湖 梅林 莲花 华富 福保 华强北",
    "440305": "南头 南山 沙河 蛇口 招商 粤海 桃源 西丽",
    "440306": "新安 西乡 航城 福永 福海 沙井 新桥 松岗 燕罗 石岩",
    "440307": "平湖 坂田 布吉 南湾 横岗 龙城 龙岗 坪地 吉华 宝龙 园山 葵涌 大鹏 南澳",
    "440308": "沙头角 海山 盐田 梅沙",
    "440309": "观湖 民治 龙华 大浪 福城 观澜",
    "440310": "坪山 马峦 碧岭 石井 坑梓 龙田",
    "440311": "光明 公明 新湖 凤凰 玉塘 马田",
}
# fmt: off
ROADS = [
    "深南大道", "北环大道", "滨河大道", "宝安大道", "龙岗大道", "布吉路", "人民路",
    "建设路", "新城路", "学府路", "红荔路", "笋岗路", "创业路", "中心路", "东环路",
    "工业路",
]
# city-level public hospitals: (name, district, grade)
CITY_HOSPITALS = [
    ("深圳市人民医院", "440303", "三级甲等"),
    ("深圳市第二人民医院", "440304", "三级甲等"),
    ("深圳市第三人民医院", "440307", "三级甲等"),
    ("北京大学深圳医院", "440304", "三级甲等"),
    ("香港大学深圳医院", "440304", "三级甲等"),
    ("深圳市中医院", "440304", "三级甲等"),
    ("深圳市儿童医院", "440304", "三级甲等"),
    ("深圳市眼科医院", "440304", "三级甲等"),
    ("深圳市康宁医院", "440303", "三级甲等"),
    ("深圳市孙逸仙心血管医院", "440303", "三级甲等"),
    ("中国医学科学院肿瘤医院深圳医院", "440307", "三级甲等"),
    ("中山大学附属第七医院", "440311", "三级甲等"),
    ("中山大学附属第八医院", "440304", "三级甲等"),
    ("南方医科大学深圳医院", "440306", "三级甲等"),
    ("深圳大学总医院", "440305", "三级"),
    ("南方科技大学医院", "440305", "三级"),
    ("深圳市萨米医疗中心", "440307", "三级"),
    ("深圳市宝安纯中医治疗医院", "440306", "三级"),
]
PUBLIC_HEALTH_CITY = [
    ("深圳市疾病预防控制中心", "440305"),
    ("深圳市慢性病防治中心", "440304"),
    ("深圳市急救中心", "440304"),
    ("深圳市血液中心", "440304"),
    ("深圳市职业病防治院", "440304"),
    ("深圳市健康教育与促进中心", "440304"),
]
BRANDS = [
    "和美", "博爱", "希玛", "爱尔", "远东", "恒生", "华侨城", "宝田", "鹏程",
    "仁安", "同仁", "禾正", "联合", "德康", "美中", "雅济", "益康", "仁和",
    "康宁", "新风", "泰康", "华美", "万众", "瑞华", "安琪", "嘉华", "明德",
    "普华", "康华", "怡康",
]
PRIVATE_KINDS = [
    "综合", "眼科", "口腔", "妇产", "骨科", "中医", "康复", "肿瘤", "儿科",
    "整形外科", "耳鼻喉", "肛肠",
]
OUTPATIENT_KINDS = [
    "综合", "口腔", "中医", "眼科", "皮肤科", "儿科", "体检", "医疗美容",
    "中西医结合", "健康管理",
]
CLINIC_KINDS = ["中医", "口腔", "西医", "中西医结合", "全科", "皮肤科", "内科", "儿科"]
LAB_BRANDS = [
    "金域", "迪安", "华大", "艾迪康", "达安", "凯普", "海普洛斯", "新产业",
    "博奥", "兰卫", "华银", "中科", "安必平", "臻和", "优迅",
]
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩邓冯曹彭曾萧田董潘袁蔡蒋余于杜叶程魏"
    "苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵"
    "万覃武钱戴严莫孔向常汤康易乔赖文"
)
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红国志春海斌")
PLACE = list("新华福安龙湖岭田沙海园富民东西南北山水桥岗塘坑围港景乐宁和康荣祥盛兴隆泰丰源德清")
# fmt: on

GRADE_MIX = {  # grade: probability, for hospitals not named above
    "street": ({"二级甲等": 0.6, "二级": 0.2, "一级甲等": 0.2}),
    "private": ({"二级甲等": 0.1, "二级": 0.2, "一级甲等": 0.2, "一级": 0.2, "未定级": 0.3}),
}
STATUS_MIX = {  # connected, testing, not_connected
    "public_hospital": (0.96, 0.03, 0.01),
    "maternal_child": (0.95, 0.05, 0.0),
    "public_health": (0.9, 0.1, 0.0),
    "private_hospital": (0.8, 0.1, 0.1),
    "lab": (0.85, 0.1, 0.05),
    "clinic": (0.7, 0.1, 0.2),
    "chc": (0.95, 0.03, 0.02),
}
FEEDS = {
    "public_hospital": ["adt", "lab", "exam", "imaging"],
    "maternal_child": ["adt", "lab", "exam"],
    "public_health": ["epidemic"],
    "private_hospital": ["adt", "lab", "exam"],
    "lab": ["lab"],
    "clinic": ["adt", "lab"],
    "chc": ["adt", "lab"],
}
FUNCTIONS = {
    "public_hospital": ["viewing", "recognition", "referral"],
    "maternal_child": ["viewing", "recognition", "referral", "maternal_child"],
    "public_health": ["public_health_report"],
    "private_hospital": ["viewing", "recognition"],
    "lab": ["recognition"],
    "clinic": ["viewing"],
    "chc": ["viewing", "referral", "maternal_child"],
}
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z


@dataclass(frozen=True)
class City:
    """Districts and institutions as DataFrames whose columns are those of the registry tables
    (institutions without ``created_at``/``updated_at``, stamped when written)."""

    districts: pd.DataFrame
    institutions: pd.DataFrame


def build_city(seed: int = 42) -> City:
    """The model city for ``seed``: 9 districts and every institution, parents before children."""
    streams = iter(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10))
    streets = _street_table()
    parts = [
        _public_hospitals(next(streams), streets),
        _maternal_child(next(streams)),
        _public_health(),
        _private_hospitals(next(streams)),
        _labs(next(streams)),
        _clinics(next(streams)),
        _chcs(next(streams), streets),  # after their parent hospitals: foreign keys
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame["credit_code"] = _credit_codes(next(streams), frame)
    frame["id"] = frame["credit_code"]
    frame["part_of"] = frame["parent_name"].map(dict(zip(frame["name"], frame["id"], strict=True)))
    frame = _add_street_and_contact(next(streams), frame, streets)
    frame = _add_connection(next(streams), frame)
    return City(_districts(), frame[INSTITUTION_COLUMNS].reset_index(drop=True))


INSTITUTION_COLUMNS = [
    "id", "credit_code", "name", "type", "grade", "district_code", "address", "phone", "active",
    "part_of", "connection_status", "connected_on", "feeds", "functions", "allow_cidrs",
]  # fmt: skip


def _districts() -> pd.DataFrame:
    codes = list(SHENZHEN)
    return pd.DataFrame(
        {
            "code": codes,
            "name": [SHENZHEN[c] for c in codes],
            "parent_code": CITY_CODE,
            "population": [POPULATION[c] for c in codes],
        }
    )


def _street_table() -> pd.DataFrame:
    rows = [(d, s) for d, names in STREETS.items() for s in names.split()]
    return pd.DataFrame(rows, columns=["district_code", "street"])


def _weights() -> tuple[np.ndarray, np.ndarray]:
    codes = np.array(list(POPULATION))
    pop = np.array(list(POPULATION.values()), dtype=float)
    return codes, pop / pop.sum()


def _by_population(rng: np.random.Generator, n: int) -> np.ndarray:
    codes, p = _weights()
    return rng.choice(codes, size=n, p=p)


def _frame(kind: str, names, districts, grades=None, city_level=False) -> pd.DataFrame:
    n = len(names)
    return pd.DataFrame(
        {
            "name": list(names),
            "type": kind,
            "district_code": list(districts),
            "grade": list(grades) if grades is not None else [None] * n,
            "city_level": city_level if isinstance(city_level, bool) else list(city_level),
        }
    )


def _public_hospitals(rng: np.random.Generator, streets: pd.DataFrame) -> pd.DataFrame:
    """City hospitals, each district's 人民医院/中医院/中心医院, then subdistrict hospitals."""
    named = _frame("public_hospital", *zip(*CITY_HOSPITALS, strict=True), city_level=True)
    districts = [d for kind in ("人民医院", "中医院", "中心医院") for d in SHENZHEN]
    kinds = [kind for kind in ("人民医院", "中医院", "中心医院") for _ in SHENZHEN]
    grades = [
        "三级甲等" if k == "人民医院" else rng.choice(["三级甲等", "二级甲等", "三级"])
        for k in kinds
    ]
    names = [f"深圳市{SHENZHEN[d]}{k}" for d, k in zip(districts, kinds, strict=True)]
    district_level = _frame("public_hospital", names, districts, grades)
    n_street = COUNTS["public_hospital"] - len(named) - len(district_level)
    pick = streets.iloc[rng.choice(len(streets), size=n_street, replace=False)]
    street_names = [
        f"深圳市{SHENZHEN[d]}{s}人民医院"
        for d, s in zip(pick["district_code"], pick["street"], strict=True)
    ]
    mix = GRADE_MIX["street"]
    street_grades = rng.choice(list(mix), size=n_street, p=list(mix.values()))
    street_level = _frame("public_hospital", street_names, pick["district_code"], street_grades)
    return pd.concat([named, district_level, street_level], ignore_index=True)


def _maternal_child(rng: np.random.Generator) -> pd.DataFrame:
    city = _frame("maternal_child", ["深圳市妇幼保健院"], ["440304"], ["三级甲等"], True)
    grades = rng.choice(["三级甲等", "二级甲等"], size=len(SHENZHEN), p=[0.4, 0.6])
    names = [f"深圳市{name}妇幼保健院" for name in SHENZHEN.values()]
    return pd.concat([city, _frame("maternal_child", names, list(SHENZHEN), grades)])


def _public_health() -> pd.DataFrame:
    city = _frame("public_health", *zip(*PUBLIC_HEALTH_CITY, strict=True), city_level=True)
    kinds = ("疾病预防控制中心", "慢性病防治院")
    names = [f"深圳市{SHENZHEN[d]}{k}" for k in kinds for d in SHENZHEN]
    return pd.concat([city, _frame("public_health", names, [d for _ in kinds for d in SHENZHEN])])


def _unique_names(rng: np.random.Generator, n: int, parts: list[list[str]]) -> list[str]:
    """``n`` distinct names, each the concatenation of one random item from every part."""
    out: dict[str, None] = {}
    while len(out) < n:
        picks = [np.asarray(p)[rng.integers(len(p), size=2 * n)] for p in parts]
        for name in pd.Series(picks[0]).str.cat(picks[1:]):
            out.setdefault(name, None)
    return list(out)[:n]


def _private_hospitals(rng: np.random.Generator) -> pd.DataFrame:
    n = COUNTS["private_hospital"]
    names = _unique_names(rng, n, [["深圳"], BRANDS, PRIVATE_KINDS, ["医院"]])
    mix = GRADE_MIX["private"]
    grades = rng.choice(list(mix), size=n, p=list(mix.values()))
    return _frame("private_hospital", names, _by_population(rng, n), grades)


def _labs(rng: np.random.Generator) -> pd.DataFrame:
    n = COUNTS["lab"]
    areas = ["", *(name.removesuffix("区") for name in SHENZHEN.values())]
    names = _unique_names(rng, n, [["深圳"], LAB_BRANDS, areas, ["医学检验实验室"]])
    return _frame("lab", names, _by_population(rng, n))


def _clinics(rng: np.random.Generator) -> pd.DataFrame:
    """门诊部 named by brand (深圳福田和美口腔门诊部), 诊所 by doctor (深圳南山刘伟明中医诊所)."""
    n = COUNTS["clinic"]
    n_outpatient = n * 2 // 5
    outpatient = _local_names(rng, n_outpatient, [BRANDS, OUTPATIENT_KINDS, ["门诊部"]])
    doctors = _local_names(rng, n - n_outpatient, [SURNAMES, GIVEN, GIVEN, CLINIC_KINDS, ["诊所"]])
    return pd.concat([_frame("clinic", *outpatient), _frame("clinic", *doctors)])


def _local_names(
    rng: np.random.Generator, n: int, parts: list[list[str]]
) -> tuple[list[str], list[str]]:
    """``n`` distinct names ``深圳{district short name}{one item of each part}`` and their
    districts, drawn by population."""
    names: dict[str, str] = {}
    while len(names) < n:
        districts = _by_population(rng, 2 * n)
        areas = pd.Series([SHENZHEN[d].removesuffix("区") for d in districts])
        picks = [pd.Series(np.asarray(p)[rng.integers(len(p), size=2 * n)]) for p in parts]
        for name, district in zip("深圳" + areas.str.cat(picks), districts, strict=True):
            names.setdefault(name, district)
    chosen = list(names)[:n]
    return chosen, [names[x] for x in chosen]


def _chcs(rng: np.random.Generator, streets: pd.DataFrame) -> pd.DataFrame:
    """社康中心: one named after each subdistrict, the rest after communities (社区), each run by
    its district's 人民医院 (院办院管)."""
    n_more = COUNTS["chc"] - len(streets)
    codes, p = _weights()
    counts = streets["district_code"].value_counts()
    street_p = np.array([p[list(codes).index(d)] / counts[d] for d in streets["district_code"]])
    pick = streets.iloc[rng.choice(len(streets), size=n_more, p=street_p / street_p.sum())]
    taken = set(streets["street"])
    communities = [
        x for x in _unique_names(rng, n_more + len(taken), [PLACE, PLACE]) if x not in taken
    ]
    communities = communities[:n_more]
    district = np.concatenate([streets["district_code"], pick["district_code"]])
    place = np.concatenate([streets["street"], communities])
    names = [f"{SHENZHEN[d]}{x}社区健康服务中心" for d, x in zip(district, place, strict=True)]
    frame = _frame("chc", names, district)
    frame["parent_name"] = [f"深圳市{SHENZHEN[d]}人民医院" for d in district]
    frame["street"] = streets["street"].tolist() + pick["street"].tolist()
    return frame


def _credit_codes(rng: np.random.Generator, frame: pd.DataFrame) -> list[str]:
    """GB 32100 codes: authority and kind (12 事业单位, 52 民办非企业, 91 企业, 92 个体工商户),
    region, a GB 11714 organisation code, and the check character."""
    n = len(frame)
    kind = frame["type"].to_numpy()
    public = np.isin(kind, ["public_hospital", "maternal_child", "public_health", "chc"])
    prefix = np.where(public, "12", "91")
    draw = rng.random(n)
    prefix = np.where((kind == "private_hospital") & (draw < 0.6), "52", prefix)
    prefix = np.where((kind == "clinic") & (draw < 0.5), "92", prefix)
    city_level = frame["city_level"].fillna(False).to_numpy(bool) | np.isin(prefix, ["91", "92"])
    region = np.where(city_level, CITY_CODE, frame["district_code"].to_numpy())
    modern = prefix != "12"
    heads = pd.Series(prefix).str.cat(pd.Series(region)) + _org_bodies(rng, n, modern)
    clash = heads.duplicated().to_numpy()
    while clash.any():  # redraw the (rare) repeated codes
        heads[clash] = heads[clash].str[:8] + _org_bodies(rng, int(clash.sum()), modern[clash])
        clash = heads.duplicated().to_numpy()
    return [make_credit_code(h) for h in heads]


def _org_bodies(rng: np.random.Generator, n: int, modern: np.ndarray) -> np.ndarray:
    """9-character GB 11714 organisation codes: old-style 8 digits, or ``MA5`` + 5 characters
    (issued since 2015), then the GB 11714 check character."""
    digits = rng.integers(0, 10, size=(n, 8))
    letters = rng.integers(0, len(USCC_ALPHABET), size=(n, 5))
    alpha = np.array(list(USCC_ALPHABET))
    old = pd.Series(["".join(r) for r in digits.astype(str)])
    new = "MA5" + pd.Series(["".join(r) for r in alpha[letters]])
    bodies = np.where(modern, new, old)
    values = np.array([[_gb11714_value(c) for c in b] for b in bodies])
    check = (11 - (values * [3, 7, 9, 10, 5, 8, 4, 2]).sum(axis=1) % 11) % 11
    return np.char.add(bodies.astype(str), np.where(check == 10, "X", check.astype(str)))


def _gb11714_value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - 55  # A=10 … Z=35


def _add_street_and_contact(
    rng: np.random.Generator, frame: pd.DataFrame, streets: pd.DataFrame
) -> pd.DataFrame:
    """Address (a subdistrict of the institution's district, a road, a number) and a phone."""
    frame = frame.copy()
    n = len(frame)
    by_district = streets.groupby("district_code")["street"].apply(list).to_dict()
    u = rng.random(n)
    chosen = [
        by_district[d][int(x * len(by_district[d]))]
        for d, x in zip(frame["district_code"], u, strict=True)
    ]
    street = frame["street"].where(frame["street"].notna(), pd.Series(chosen, index=frame.index))
    road = np.asarray(ROADS)[rng.integers(len(ROADS), size=n)]
    number = rng.integers(1, 3000, size=n).astype(str)
    district = frame["district_code"].map(SHENZHEN)
    frame["address"] = "广东省深圳市" + district + street + "街道" + road + number + "号"
    frame["phone"] = "0755-" + pd.Series(rng.integers(20_000_000, 99_999_999, size=n).astype(str))
    return frame


def _add_connection(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Connection status by type (mostly connected), the date it went live, feeds and functions."""
    frame = frame.copy()
    n = len(frame)
    mix = np.array([STATUS_MIX[k] for k in frame["type"]])
    draw = rng.random(n)[:, None] < mix.cumsum(axis=1)
    status = np.array(["connected", "testing", "not_connected"])[draw.argmax(axis=1)]
    start = dt.date(2018, 1, 1)
    days = rng.integers(0, (dt.date(2025, 6, 30) - start).days, size=n)
    frame["connection_status"] = status
    frame["connected_on"] = [
        start + dt.timedelta(days=int(d)) if s == "connected" else None
        for d, s in zip(days, status, strict=True)
    ]
    feeds = frame["type"].map(lambda k: _flags(FEEDS[k]))
    functions = frame["type"].map(lambda k: _flags(FUNCTIONS[k]))
    frame["feeds"] = feeds.where(status != "not_connected", "{}")
    frame["functions"] = functions.where(status == "connected", "{}")
    frame["allow_cidrs"] = ALLOW_CIDRS
    frame["active"] = True
    frame["part_of"] = frame["part_of"].astype(object).where(frame["part_of"].notna(), None)
    return frame


def _flags(items: list[str]) -> str:
    return json.dumps(dict.fromkeys(sorted(items), True), separators=(",", ":"))
