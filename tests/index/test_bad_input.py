"""Bad input gives a clear IndexInputError naming file, row, column and reason."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rhip.index import IndexInputError, IndexMethodError, read_data, read_framework, run

ASEM = Path("/work/shared/data/coinr-asem")


@pytest.fixture
def tmp_asem(tmp_path):
    for name in ("ASEM_iMeta.csv", "ASEM_iData.csv"):
        shutil.copy(ASEM / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = fn(df)
    (df if out is None else out).to_csv(path, index=False)


def test_non_numeric_cell_names_file_row_and_column(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iData.csv",
        lambda d: d.__setitem__("LPI", d["LPI"].where(d.index != 4, "n.a.x")),
    )
    fw = read_framework(tmp_asem / "ASEM_iMeta.csv")
    with pytest.raises(IndexInputError) as err:
        read_data(tmp_asem / "ASEM_iData.csv", fw)
    e = err.value
    assert (e.file.endswith("ASEM_iData.csv"), e.row, e.column) == (True, 6, "LPI")
    assert "non-numeric" in e.reason and "n.a.x" in str(e)


def test_duplicate_unit_code(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iData.csv",
        lambda d: d.__setitem__("uCode", d["uCode"].where(d.index != 3, "AUT")),
    )
    with pytest.raises(
        IndexInputError, match=r"row 5, column uCode: duplicate unit 'AUT'.*first at row 2"
    ):
        read_data(tmp_asem / "ASEM_iData.csv", read_framework(tmp_asem / "ASEM_iMeta.csv"))


def test_missing_unit_code(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iData.csv",
        lambda d: d.__setitem__("uCode", d["uCode"].where(d.index != 7, "")),
    )
    with pytest.raises(IndexInputError, match=r"row 9, column uCode: missing unit code"):
        read_data(tmp_asem / "ASEM_iData.csv", read_framework(tmp_asem / "ASEM_iMeta.csv"))


def test_missing_indicator_column(tmp_asem):
    _edit(tmp_asem / "ASEM_iData.csv", lambda d: d.drop(columns=["Tariff"]))
    with pytest.raises(IndexInputError) as err:
        read_data(tmp_asem / "ASEM_iData.csv", read_framework(tmp_asem / "ASEM_iMeta.csv"))
    assert err.value.column == "Tariff" and err.value.row == 1


def test_duplicate_column_name(tmp_path):
    (tmp_path / "d.csv").write_text("uCode,LPI,LPI\nA,1,2\n", encoding="utf-8")
    with pytest.raises(IndexInputError, match="duplicate column name"):
        read_data(tmp_path / "d.csv", read_framework(ASEM / "ASEM_iMeta.csv"))


def test_duplicate_indicator_code(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("iCode", d["iCode"].where(d.index != 2, "LPI")),
    )
    with pytest.raises(
        IndexInputError, match=r"row 4, column iCode: duplicate code 'LPI' \(first at row 2\)"
    ):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


def test_parent_that_does_not_exist(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("Parent", d["Parent"].where(d.index != 0, "Nowhere")),
    )
    with pytest.raises(
        IndexInputError, match=r"row 2, column Parent: parent 'Nowhere' of 'LPI' does not exist"
    ):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


def test_cycle(tmp_asem):
    # Index → Conn → Index: the top node gets a parent inside its own subtree
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("Parent", d["Parent"].where(d["iCode"] != "Index", "Conn")),
    )
    with pytest.raises(IndexInputError, match="cycle in the framework"):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_non_positive_weight(tmp_asem, bad):
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("Weight", d["Weight"].where(d.index != 9, bad)),
    )
    with pytest.raises(
        IndexInputError, match=r"row 11, column Weight: weight of 'Services' must be a positive"
    ):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


def test_non_numeric_weight(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("Weight", d["Weight"].where(d.index != 9, "heavy")),
    )
    with pytest.raises(IndexInputError, match=r"row 11, column Weight: non-numeric value 'heavy'"):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


def test_level_that_contradicts_the_tree(tmp_asem):
    _edit(
        tmp_asem / "ASEM_iMeta.csv",
        lambda d: d.__setitem__("Level", d["Level"].where(d.index != 0, "2")),
    )
    with pytest.raises(IndexInputError, match="Level 2 of 'LPI' does not match"):
        read_framework(tmp_asem / "ASEM_iMeta.csv")


def test_geometric_mean_over_zero_values(asem):
    fw, data = asem
    with pytest.raises(IndexMethodError, match="values > 0"):
        run(
            fw,
            data,
            {
                "steps": [
                    {"step": "normalise", "lower": 0, "upper": 100},
                    {"step": "aggregate", "method": "geometric"},
                ]
            },
        )


def test_ahp_matrix_with_consistency_ratio_above_limit(asem):
    fw, data = asem
    bad = [[1, 9, 1 / 9], [1 / 9, 1, 9], [9, 1 / 9, 1]]  # A ≫ B ≫ C ≫ A
    pipe = {
        "steps": [
            {"step": "normalise"},
            {
                "step": "weights",
                "method": "equal",
                "levels": {3: {"method": "ahp", "matrices": {"Sust": bad}}},
            },
            {"step": "aggregate"},
        ]
    }
    with pytest.raises(IndexInputError) as err:
        run(fw, data, pipe)
    assert err.value.row == "Sust" and err.value.column == "matrices"
    assert "consistency ratio" in err.value.reason and "> 0.1" in err.value.reason


def test_unit_with_too_little_data(asem):
    fw, data = asem
    with pytest.raises(IndexInputError) as err:
        run(
            fw,
            data,
            {
                "steps": [
                    {"step": "screen", "min_data_availability": 0.95, "action": "error"},
                    {"step": "normalise"},
                    {"step": "aggregate"},
                ]
            },
        )
    e = err.value
    assert e.file.endswith("ASEM_iData.csv") and isinstance(e.row, int) and e.column == "uCode"
    assert "too little data" in e.reason


def test_unit_without_any_data(tmp_asem):
    fw = read_framework(tmp_asem / "ASEM_iMeta.csv")
    _edit(tmp_asem / "ASEM_iData.csv", lambda d: d.loc.__setitem__((2, fw.indicators), ""))
    with pytest.raises(IndexInputError, match=r"row 4: unit 'BGR' has no indicator data at all"):
        read_data(tmp_asem / "ASEM_iData.csv", fw)


def test_unknown_method_and_parameter(asem):
    fw, data = asem
    with pytest.raises(IndexInputError, match="unknown normalise method 'minimax'"):
        run(fw, data, {"steps": [{"step": "normalise", "method": "minimax"}]})
    with pytest.raises(IndexInputError, match=r"bad parameters for normalise 'minmax'.*uper"):
        run(fw, data, {"steps": [{"step": "normalise", "method": "minmax", "uper": 1}]})
    with pytest.raises(IndexInputError, match="unknown step 'normalize'"):
        run(fw, data, {"steps": [{"step": "normalize"}]})


def test_missing_denominator_column(tmp_asem):
    fw = read_framework(tmp_asem / "ASEM_iMeta.csv")
    _edit(tmp_asem / "ASEM_iData.csv", lambda d: d.drop(columns=["Area"]))
    data = read_data(tmp_asem / "ASEM_iData.csv", fw)
    with pytest.raises(
        IndexInputError, match="column Area: denominator 'Area' of indicator 'Bord'"
    ):
        run(fw, data, {"steps": [{"step": "denominate"}]})


def test_excel_input_gives_the_same_result_as_csv(tmp_path, asem):
    fw, data = asem
    pd.read_csv(ASEM / "ASEM_iMeta.csv").to_excel(
        tmp_path / "meta.xlsx", sheet_name="iMeta", index=False
    )
    pd.read_csv(ASEM / "ASEM_iData.csv").to_excel(
        tmp_path / "data.xlsx", sheet_name="iData", index=False
    )
    fw2 = read_framework(tmp_path / "meta.xlsx")
    r1, r2 = run(fw, data), run(fw2, read_data(tmp_path / "data.xlsx", fw2))
    assert np.allclose(r1.values, r2.values, equal_nan=True)
