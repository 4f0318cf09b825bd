"""Code maps (项目对照) and UCUM units: loading CSVs, converting values, standardising at ingest."""

from __future__ import annotations

import doctest
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from exchange.support import OTHER, SENDER, add_institution
from rhip.exchange import terminology
from rhip.exchange.models import code_maps
from rhip.exchange.terminology import load_code_map, standardise, ucum_unit, unit_factor
from rhip.kernel.errors import ManyErrors

HEADER = "institution,local_code,local_display,system,code,display,unit,from_unit,factor\n"


def test_module_examples_run() -> None:
    assert doctest.testmod(terminology).failed == 0


def test_ucum_conversions_come_from_ucum_not_a_table() -> None:
    assert unit_factor("g/dL", "g/L") == pytest.approx(10)
    assert unit_factor("g/L", "g/dL") == pytest.approx(0.1)
    assert unit_factor("10*9/L", "/nL") == pytest.approx(1)
    assert unit_factor("/nL", "10*9/L") == pytest.approx(1)
    assert unit_factor("umol/L", "mmol/L") == pytest.approx(0.001)
    assert unit_factor("u[IU]/mL", "m[IU]/L") == pytest.approx(1)
    assert unit_factor("mg/dL", "mmol/L") is None  # mass ↔ substance needs the analyte
    assert unit_factor("g/L", "s") is None and unit_factor("furlong", "g/L") is None
    assert ucum_unit("x10^12/L") == "10*12/L" and ucum_unit("mmHg") == "mm[Hg]"
    assert ucum_unit(" ") is None and ucum_unit(None) is None


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "map.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(code_maps)).scalar_one()


@pytest.mark.postgres
def test_starter_and_institution_maps_load_and_reload(engine: Engine, tmp_path: Path) -> None:
    org = add_institution(engine)
    starter = load_code_map(engine, terminology.STARTER)
    assert starter.institutions == ("",) and 40 <= starter.rows <= 120
    path = _write(
        tmp_path,
        f"{SENDER},0101,血糖,LN,14749-6,葡萄糖,mmol/L,,\n"
        f"{SENDER},0101,血糖,LN,14749-6,葡萄糖,mmol/L,mg/dL,0.0555\n"
        f"{org},0202,血红蛋白,LOINC,718-7,血红蛋白,g/L,,\n",
    )
    assert load_code_map(engine, path).rows == 3
    assert load_code_map(engine, path).rows == 3  # a reload replaces, it does not duplicate
    assert _rows(engine) == starter.rows + 3
    with engine.connect() as conn:
        systems = set(conn.execute(select(code_maps.c.std_system)).scalars())
    assert systems == {"http://loinc.org"}


@pytest.mark.postgres
def test_a_bad_csv_names_each_bad_line_and_loads_nothing(engine: Engine, tmp_path: Path) -> None:
    add_institution(engine)
    path = _write(
        tmp_path,
        ",GLU,葡萄糖,LN,14749-6,葡萄糖,mmol/L,,\n"  # line 2: good
        ",HGB,血红蛋白,LN,718-7,血红蛋白,gramz/L,,\n"  # line 3: not UCUM
        "NOSUCHORG,K,钾,LN,2823-3,钾,mmol/L,,\n"  # line 4: unknown institution
        ",TC,总胆固醇,LN,14647-2,总胆固醇,mmol/L,mg/dL,\n"  # line 5: from_unit without factor
        ",,空,LN,1-1,空,,,\n"  # line 6: no local code
        ",GLU,葡萄糖,LN,14749-6,葡萄糖,mmol/L,,\n"  # line 7: repeats line 2
        ",TG,甘油三酯,LN,14927-8,甘油三酯,mmol/L,mg/dL,-1\n",  # line 8: factor not positive
    )
    with pytest.raises(ManyErrors) as info:
        load_code_map(engine, path)
    lines = [e.message.split(":")[0] for e in info.value.errors]
    assert lines == ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]
    text = info.value.message
    assert "'gramz/L' is not a UCUM unit" in text and "NOSUCHORG" in text
    assert "repeats line 2" in text and "needs a factor" in text
    assert _rows(engine) == 0
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("code,unit\n14749-6,mmol/L\n", encoding="utf-8")
    with pytest.raises(terminology.TerminologyError, match="line 1: header lacks"):
        load_code_map(engine, bad_header)


@pytest.mark.postgres
def test_standardise_converts_to_the_standard_unit_set_based(engine: Engine) -> None:
    org = add_institution(engine)
    other = add_institution(engine, OTHER)
    load_code_map(engine, terminology.STARTER)
    obs = pd.DataFrame(
        [
            ("GLU", None, 100.0, "mg/dL"),  # analyte factor from the map: × 0.0555
            ("GLU", None, 5.6, "mmol/L"),
            ("HGB", None, 13.5, "g/dL"),  # UCUM: × 10 → g/L
            ("WBC", None, 6.1, "/nL"),  # UCUM: 10*9/L is /nL
            ("PLT", None, 210.0, "×10^9/L"),  # LIS notation → 10*9/L
            ("ALT", None, 30.0, "IU/L"),  # map row [IU]/L → U/L × 1
            ("GLU", None, 5.0, "furlongs"),  # not UCUM
            ("GLU", None, 5.0, "g/L"),  # UCUM g/L → mg/dL, then the map factor
            ("HGB", None, 5.0, "mmol/L"),  # UCUM but not convertible to g/L
            ("XYZ", None, 1.0, "g/L"),  # unmapped
            ("2345-7", "http://loinc.org", 5.2, "mmol/L"),  # a LOINC code stands for itself
            ("INR", None, 1.1, None),
        ],
        columns=["code", "code_system", "num", "unit"],
    )
    with engine.connect() as conn:
        std = standardise(conn, org, obs)
    assert std["std_code"].tolist()[:6] == ["14749-6", "14749-6", "718-7", "6690-2", "777-3",
                                            "1742-6"]  # fmt: skip
    values = std["std_value"].tolist()
    assert values[0] == pytest.approx(5.55) and values[1] == pytest.approx(5.6)
    assert values[2] == pytest.approx(135) and values[3] == pytest.approx(6.1)
    assert values[4] == pytest.approx(210) and values[5] == pytest.approx(30)
    assert values[7] == pytest.approx(500 * 0.0555)  # 5 g/L = 500 mg/dL
    assert std["std_unit"].tolist()[:4] == ["mmol/L", "mmol/L", "g/L", "10*9/L"]
    assert std["unit_status"].tolist()[6:9] == ["unknown", "ok", "incompatible"]
    assert values[6] is None and values[8] is None
    assert std["mapped"].tolist()[9:] == [False, True, True]
    assert std["std_code"][9] is None and values[9] is None
    assert (std["std_code"][10], values[10]) == ("2345-7", pytest.approx(5.2))
    assert std["unit_status"][11] == "none" and values[11] == pytest.approx(1.1)
    with engine.connect() as conn:  # the other institution has no map of its own: the default
        assert standardise(conn, other, obs.iloc[:1])["std_value"][0] == pytest.approx(5.55)


@pytest.mark.postgres
def test_an_institution_row_overrides_the_platform_default(engine: Engine, tmp_path) -> None:
    org = add_institution(engine)
    load_code_map(engine, terminology.STARTER)
    load_code_map(
        engine, _write(tmp_path, f"{SENDER},GLU,餐后血糖,LN,14760-3,餐后2h血糖,mmol/L,,\n")
    )
    obs = pd.DataFrame(
        [("GLU", None, 7.0, "mmol/L")], columns=["code", "code_system", "num", "unit"]
    )
    with engine.connect() as conn:
        assert standardise(conn, org, obs)["std_code"][0] == "14760-3"
