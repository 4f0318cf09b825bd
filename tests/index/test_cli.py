"""`rhip index` commands through Typer's CliRunner on the sub-app."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import load_workbook
from typer.testing import CliRunner

from rhip.index import read_framework
from rhip.index.cli import app

ASEM = Path("/work/shared/data/coinr-asem")
FULL = Path(__file__).parent / "data" / "coinr_full_pipeline.yaml"
runner = CliRunner()


def test_build_asem_writes_coinr_identical_scores(tmp_path):
    res = runner.invoke(
        app,
        [
            "build",
            str(ASEM / "ASEM_iMeta.csv"),
            str(ASEM / "ASEM_iData.csv"),
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    got = pd.read_csv(tmp_path / "scores.csv").set_index("uCode")
    ref = pd.read_csv(ASEM / "COINr_minmax_amean_scores.csv").set_index("uCode")
    assert np.nanmax(np.abs(got.loc[ref.index, ref.columns].to_numpy() - ref.to_numpy())) < 1e-6
    for name in ("ranks.csv", "index.xlsx", "report.html", "echarts.min.js", "ECHARTS-LICENSE.txt"):
        assert (tmp_path / name).stat().st_size > 0


def test_build_with_pipeline_and_uncertainty(tmp_path):
    res = runner.invoke(
        app,
        [
            "build",
            str(ASEM / "ASEM_iMeta.csv"),
            str(ASEM / "ASEM_iData.csv"),
            "--pipeline",
            str(FULL),
            "--out",
            str(tmp_path),
            "-u",
            "100",
            "--sensitivity",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    book = load_workbook(tmp_path / "index.xlsx", read_only=True)
    names = book.sheetnames
    assert {
        "Ranking 排名",
        "L4 Level 4",
        "L1 Level 1",
        "Uncertainty 不确定性",
        "Sensitivity 敏感性",
    } <= set(names)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<script src="echarts.min.js"></script>' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # works offline: no CDN
    data = json.loads(re.search(r"const D = (\{.*?\});\n", html, re.S).group(1))
    # the recorded pipeline.yaml regenerates the same scores
    again = tmp_path / "again"
    args = [str(ASEM / "ASEM_iMeta.csv"), str(ASEM / "ASEM_iData.csv")]
    res = runner.invoke(
        app, ["build", *args, "--pipeline", str(tmp_path / "pipeline.yaml"), "-o", str(again)]
    )
    assert res.exit_code == 0, res.output
    assert (again / "scores.csv").read_text() == (tmp_path / "scores.csv").read_text()
    assert len(data["interval"]["names"]) == 51 and len(data["units"]) == 51


def test_shipped_framework_and_synthetic_cities(tmp_path):
    fw_path, data_path = tmp_path / "framework.yaml", tmp_path / "cities.csv"
    assert runner.invoke(app, ["framework", "--out", str(fw_path)]).exit_code == 0
    assert runner.invoke(app, ["synth", "--out", str(data_path)]).exit_code == 0
    fw = read_framework(fw_path)
    assert [fw.nodes[c].name for c in fw.children(fw.root)] == ["治理水平", "建设水平", "应用水平"]
    dims = [d for a in fw.children(fw.root) for d in fw.children(a)]
    assert [fw.nodes[d].name for d in dims] == [
        "发展环境",
        "组织建设",
        "数据治理",
        "建设投入",
        "基础能力",
        "创新能力",
        "应用功能",
        "服务覆盖",
    ]
    assert all(3 <= len(fw.children(d)) <= 5 for d in dims)
    assert all(fw.nodes[i].source for i in fw.indicators)
    cities = pd.read_csv(data_path, dtype={"uCode": str})
    assert len(cities) == 36 * 3 and cities["uCode"].nunique() == 36
    assert cities["Data_source"].str.contains("SYNTHETIC").all()
    out = tmp_path / "report"
    res = runner.invoke(
        app, ["build", str(fw_path), str(data_path), "--out", str(out), "-u", "200"]
    )
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(out / "scores.csv", dtype={"uCode": str})
    assert list(scores.columns[:2]) == ["uCode", "Time"] and len(scores) == 108
    assert "SYNTHETIC" in (out / "report.html").read_text(encoding="utf-8")


def test_bad_input_exits_with_a_clear_message(tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text(
        (ASEM / "ASEM_iData.csv").read_text().replace("4.097985", "four"), encoding="utf-8"
    )
    res = runner.invoke(
        app, ["build", str(ASEM / "ASEM_iMeta.csv"), str(bad), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert (
        "row 2" in res.output and "LPI" in res.output and "non-numeric value 'four'" in res.output
    )
