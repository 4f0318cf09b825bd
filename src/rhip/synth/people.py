"""Synthetic residents (居民) and their registrations (建档) at institutions, with realistic noise.

Residents get valid resident IDs (GB 11643, birthplace from all of China, some historic county
codes), Chinese names drawn by surname frequency, sex consistent with the ID, 11-digit mobiles
shared within a household for children, and addresses in Shenzhen's districts. Each resident
registers at a few institutions; each registration copies the resident's data through a noise model
(``NoiseSpec``). The true person behind every registration is kept (``true_person``), so the MPI's
matching quality can be measured. Everything is vectorised with numpy and deterministic by seed.

>>> import pandas as pd
>>> inst = pd.DataFrame({"id": ["h1", "h2"], "credit_code": ["C1", "C2"],
...                      "type": ["public_hospital", "clinic"],
...                      "district_code": ["440305", "440306"]})
>>> residents, regs = generate(50, inst, seed=1)
>>> len(residents), set(regs["true_person"]) <= set(residents["person_key"])
(50, True)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhip.kernel.regions import SHENZHEN
from rhip.synth import people_noise
from rhip.synth.names import GIVEN_FEMALE, GIVEN_MALE, SURNAMES
from rhip.synth.people_regions import draw_birthplaces

REFERENCE_DATE = dt.date(2025, 6, 30)  # "today" of the synthetic city: fixed, so seeds reproduce
# age bands (years) and their share of Shenzhen's population (2020 census, rounded)
AGE_BANDS = ((0, 15, 0.15), (15, 25, 0.11), (25, 45, 0.45), (45, 65, 0.23), (65, 95, 0.06))
# district population in millions (深圳统计年鉴, rounded): where households live
DISTRICT_POPULATION = {
    "440306": 4.5, "440307": 4.0, "440309": 2.5, "440305": 1.8, "440304": 1.6, "440303": 1.1,
    "440311": 1.1, "440310": 0.55, "440308": 0.2,
}  # fmt: skip
STREETS = ("建设路", "人民路", "深南大道", "滨河路", "新安路", "龙岗大道", "梅林路", "桃园路")
MOBILE_PREFIXES = tuple(
    str(p)
    for p in (*range(130, 140), *range(150, 154), *range(155, 160), *range(180, 190), 177, 199)
)
# relative chance that a registration is at an institution of this type
TYPE_WEIGHT = {"public_hospital": 6.0, "private_hospital": 2.0, "chc": 3.0, "clinic": 2.0}
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])


@dataclass(frozen=True)
class NoiseSpec:
    """Share of registrations receiving each kind of noise (independently drawn)."""

    missing_id: float = 0.10  # no resident ID recorded
    name_char: float = 0.05  # one character replaced by a homophone or a similar shape
    swap_day_month: float = 0.03  # birth day and month exchanged
    pinyin_only: float = 0.05  # name recorded in pinyin (foreign-style card, 拼音)
    phone_changed: float = 0.02  # another phone number
    traditional: float = 0.02  # name in traditional characters (繁体)
    missing_phone: float = 0.02
    missing_address: float = 0.10

    @classmethod
    def bench(cls) -> NoiseSpec:
        """The fixed noise of ``bench/mpi.py``: exactly the five kinds the benchmark names."""
        return cls(traditional=0.0, missing_phone=0.0, missing_address=0.0)


def generate(
    n_residents: int, institutions: pd.DataFrame, seed: int, noise: NoiseSpec | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Residents and their registrations at ``institutions`` (columns id, credit_code, type,
    district_code), deterministic by ``seed``. Registrations are in arrival order."""
    rng = np.random.default_rng(seed)
    residents = _residents(rng, n_residents)
    registrations = _registrations(rng, residents, institutions)
    people_noise.apply(rng, registrations, residents, noise or NoiseSpec())
    return residents, registrations


def _residents(rng: np.random.Generator, n: int) -> pd.DataFrame:
    male = rng.random(n) < 0.51
    born = _birth_dates(rng, n)
    surname, given = _names(rng, male)
    frame = pd.DataFrame(
        {
            "person_key": np.char.add("R", np.char.zfill(np.arange(1, n + 1).astype(str), 8)),
            "resident_id": _resident_ids(rng, born, male),
            "name": np.char.add(surname, given),
            "surname": surname,
            "gender": np.where(male, "male", "female"),
            "birth_date": np.datetime_as_string(born, unit="D"),
        }
    )
    frame["birthplace_code"] = frame["resident_id"].str[:6]
    return _households(rng, frame)


def _birth_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    bands = rng.choice(len(AGE_BANDS), size=n, p=[b[2] for b in AGE_BANDS])
    low = np.array([b[0] for b in AGE_BANDS])[bands] * 365.25
    high = np.array([b[1] for b in AGE_BANDS])[bands] * 365.25
    age_days = (low + rng.random(n) * (high - low)).astype("int64")
    return np.datetime64(REFERENCE_DATE, "D") - age_days.astype("timedelta64[D]")


def _names(rng: np.random.Generator, male: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(male)
    shares = np.array([s for _, s in SURNAMES])
    surname = np.array([s for s, _ in SURNAMES])[
        rng.choice(len(SURNAMES), n, p=shares / shares.sum())
    ]
    pools = {True: np.array(list(GIVEN_MALE)), False: np.array(list(GIVEN_FEMALE))}

    def draw(flags: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype="<U1")
        for leaning, pool in pools.items():
            rows = np.flatnonzero(flags == leaning)
            zipf = 1.0 / (np.arange(len(pool)) + 8.0)  # a few characters are far more common
            out[rows] = pool[rng.choice(len(pool), len(rows), p=zipf / zipf.sum())]
        return out

    # a given name leans to the sex, with 10% drawn from the other pool; 1 or 2 characters
    first = draw(male ^ (rng.random(n) < 0.1))
    second = draw(male ^ (rng.random(n) < 0.1))
    two = rng.random(n) < 0.72
    return surname, np.where(two, np.char.add(first, second), first)


def _resident_ids(rng: np.random.Generator, born: np.ndarray, male: np.ndarray) -> np.ndarray:
    n = len(born)
    places = draw_birthplaces(rng, n)
    ymd = np.char.replace(np.datetime_as_string(born, unit="D"), "-", "")
    ids = np.empty(n, dtype="<U18")
    todo = np.arange(n)
    while len(todo):  # redraw the sequence number where two residents would share an ID
        parity = rng.integers(0, 5, len(todo)) * 2 + male[todo]  # odd 17th digit: male
        seq = rng.integers(0, 100, len(todo)) * 10 + parity
        body = np.char.add(np.char.add(places[todo], ymd[todo]), np.char.zfill(seq.astype(str), 3))
        digits = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(-1, 17) - 48
        check = np.array(list("10X98765432"))[(digits * ID_WEIGHTS).sum(axis=1) % 11]
        ids[todo] = np.char.add(body, check)
        taken = pd.Series(ids[: todo[-1] + 1]).duplicated().to_numpy()
        todo = np.flatnonzero(taken)
    return ids


def _households(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Group residents into households sharing an address; children use the eldest's phone."""
    n = len(frame)
    sizes = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.3, 0.3, 0.22, 0.13, 0.05])
    household = np.repeat(np.arange(n), sizes)[:n]
    n_house = household[-1] + 1 if n else 0
    codes = np.array(list(DISTRICT_POPULATION))
    pop = np.array(list(DISTRICT_POPULATION.values()))
    district = codes[rng.choice(len(codes), n_house, p=pop / pop.sum())]
    names = pd.Series(district).map(SHENZHEN).to_numpy().astype(str)
    street = np.array(STREETS)[rng.integers(0, len(STREETS), n_house)]
    number = rng.integers(1, 300, n_house).astype(str)
    room = (rng.integers(1, 33, n_house) * 100 + rng.integers(1, 9, n_house)).astype(str)
    building = rng.integers(1, 12, n_house).astype(str)
    address = _cat("广东省深圳市", names, street, number, "号", building, "栋", room, "室")
    phone = _cat(np.array(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), n)],
                 np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8))  # fmt: skip
    frame["household"] = household
    frame = frame.sort_values(["household", "birth_date"], kind="stable").reset_index(drop=True)
    eldest = np.unique(frame["household"].to_numpy(), return_index=True)[1]
    child = frame["birth_date"].to_numpy() > str(REFERENCE_DATE.year - 16)
    phone = np.where(child, phone[eldest[frame["household"].to_numpy()]], phone)
    frame["phone"] = phone
    frame["address"] = address[frame["household"].to_numpy()]
    frame["district_code"] = district[frame["household"].to_numpy()]
    return frame.sort_values("person_key").reset_index(drop=True)


def _cat(*parts: object) -> np.ndarray:
    out = np.asarray(parts[0])
    for part in parts[1:]:
        out = np.char.add(out, part)
    return out


def _registrations(
    rng: np.random.Generator, residents: pd.DataFrame, institutions: pd.DataFrame
) -> pd.DataFrame:
    """1 + Poisson(1.6) registrations per resident, mostly at institutions of the home district."""
    n_inst = len(institutions)
    counts = np.minimum(1 + rng.poisson(1.6, len(residents)), max(1, n_inst))
    who = np.repeat(np.arange(len(residents)), counts)
    home = residents["district_code"].to_numpy()[who]
    weight = institutions["type"].map(TYPE_WEIGHT).fillna(1.0).to_numpy()
    inst_district = institutions["district_code"].to_numpy()
    chosen = rng.choice(n_inst, size=len(who), p=weight / weight.sum())
    local = rng.random(len(who)) < 0.65
    for code in np.unique(home):
        rows = np.flatnonzero(local & (home == code))
        in_district = np.flatnonzero(inst_district == code)
        if len(rows) and len(in_district):
            w = weight[in_district]
            chosen[rows] = in_district[rng.choice(len(in_district), len(rows), p=w / w.sum())]
    pairs = pd.DataFrame({"who": who, "inst": chosen}).drop_duplicates()
    start = np.datetime64("2016-01-01T00:00:00", "s").astype("int64")
    stop = np.datetime64(f"{REFERENCE_DATE.isoformat()}T00:00:00", "s").astype("int64")
    born = residents["birth_date"].to_numpy().astype("datetime64[s]").astype("int64")
    low = np.maximum(start, born[pairs["who"].to_numpy()])  # nobody registers before birth
    pairs["at"] = low + (rng.random(len(pairs)) * (stop - low)).astype("int64")
    pairs = pairs.sort_values("at", kind="stable").reset_index(drop=True)
    res = residents.iloc[pairs["who"].to_numpy()].reset_index(drop=True)
    inst = institutions.iloc[pairs["inst"].to_numpy()].reset_index(drop=True)
    serial = pairs.groupby("inst").cumcount().to_numpy() + 1
    return pd.DataFrame(
        {
            "true_person": res["person_key"],
            "institution_id": inst["id"].astype(str),
            "credit_code": inst["credit_code"].astype(str),
            "mrn": np.char.add("P", np.char.zfill(serial.astype(str), 9)),
            "name": res["name"],
            "gender": res["gender"],
            "birth_date": res["birth_date"],
            "resident_id": res["resident_id"].astype(object),
            "phone": res["phone"].astype(object),
            "address": res["address"].astype(object),
            "district_code": res["district_code"],
            "registered_at": pd.to_datetime(pairs["at"].to_numpy(), unit="s", utc=True),
            "noise": "",
            "_surname_len": res["surname"].str.len(),
        }
    )
