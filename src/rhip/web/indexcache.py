"""The development index shown on the index page (发展指数): the shipped national framework over
the SYNTHETIC 36-city data, built once per process with its uncertainty analysis, the Excel
workbook written under ``var_dir/web-index``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from rhip.index import IndexResult, read_data, read_framework, run
from rhip.index.cli import DEFAULT_FRAMEWORK, default_spec
from rhip.index.excel import write_workbook
from rhip.index.report import chart_data, ranking_rows
from rhip.index.synth import write_synthetic
from rhip.index.uncertainty import UncertaintyResult, uncertainty

REPLICATIONS = 1000
SEED = 2024
MODEL_CITY = "440300"  # 深圳 Shenzhen, GB/T 2260
_lock = threading.Lock()
_built: dict[Path, Built] = {}


@dataclass(frozen=True)
class Built:
    result: IndexResult
    ua: UncertaintyResult
    workbook: Path
    ranking: list[dict]
    aspect_names: list[str]
    charts: dict
    survey: dict[str, float]  # the model city's (深圳 440300) latest survey value per indicator


def built(var_dir: Path) -> Built:
    """The index for this data folder, built on first use (about two seconds)."""
    out = Path(var_dir) / "web-index"
    with _lock:
        if out not in _built:
            _built[out] = _build(out)
        return _built[out]


def _build(out: Path) -> Built:
    with resources.as_file(resources.files("rhip.index.data") / DEFAULT_FRAMEWORK) as src:
        fw = read_framework(src)
    data_path = write_synthetic(fw, out / "cities.csv", seed=SEED)
    result = run(fw, read_data(data_path, fw), None)
    steps = [s.step for s in result.pipeline.steps]
    ua = uncertainty(result, default_spec(steps, REPLICATIONS, 1))
    book = write_workbook(result, out / "index.xlsx", {"Uncertainty 不确定性": ua.table})
    ranking, aspects = ranking_rows(result, ua)
    raw = pd.read_csv(data_path, dtype={"uCode": str})
    latest = raw[(raw["uCode"] == MODEL_CITY) & (raw["Time"] == raw["Time"].max())]
    survey = {
        c: float(latest[c].iloc[0])
        for c in fw.indicators
        if c in latest and latest[c].notna().all()
    }
    return Built(result, ua, Path(book), ranking, aspects, chart_data(result, ua), survey)
