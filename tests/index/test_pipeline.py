"""Pipeline behaviour: per-indicator and per-level settings, weights, log and regeneration."""

import numpy as np
import pytest

from rhip.index import Pipeline, regen, run
from rhip.index.pipeline import StepSpec

PIPE = {"steps": [{"step": "normalise", "method": "minmax"}, {"step": "aggregate"}]}


def test_per_indicator_normaliser_overrides_only_that_indicator(asem):
    fw, data = asem
    base = run(fw, data, PIPE)
    pipe = {
        "steps": [
            {"step": "normalise", "method": "minmax", "indicators": {"LPI": {"method": "rank"}}},
            {"step": "aggregate"},
        ]
    }
    res = run(fw, data, pipe)
    j = res.codes.index("LPI")
    assert np.nanmax(res.values[:, j]) == np.sum(~np.isnan(data.values[:, 0]))  # ranks
    others = [res.codes.index(c) for c in fw.indicators if c != "LPI"]
    assert np.allclose(res.values[:, others], base.values[:, others], equal_nan=True)


def test_per_indicator_params_inherit_the_global_method(asem):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {
                    "step": "normalise",
                    "method": "minmax",
                    "lower": 0,
                    "upper": 100,
                    "indicators": {"Ship": {"upper": 10}},
                },
                {"step": "aggregate"},
            ]
        },
    )
    assert np.nanmax(res.values[:, res.codes.index("Ship")]) == 10
    assert np.nanmax(res.values[:, res.codes.index("LPI")]) == 100


def test_per_level_aggregator(asem):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "normalise", "lower": 1, "upper": 100},
                {
                    "step": "aggregate",
                    "method": "arithmetic",
                    "levels": {4: {"method": "geometric"}},
                },
            ]
        },
    )
    conn, sust, idx = (res.values[:, res.codes.index(c)] for c in ("Conn", "Sust", "Index"))
    assert np.allclose(idx, np.sqrt(conn * sust))
    phys = res.values[:, res.codes.index("Physical")]
    kids = [res.codes.index(c) for c in fw.children("Physical")]
    assert np.allclose(phys, np.nanmean(res.values[:, kids], axis=1))


def test_topsis_as_the_top_level(asem):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "normalise"},
                {"step": "aggregate", "levels": {4: {"method": "topsis", "scale": 1}}},
            ]
        },
    )
    idx = res.values[:, res.codes.index("Index")]
    assert (
        np.nanmin(idx) >= 0
        and np.nanmax(idx) <= 1
        and res.log[-1]["levels"] == {4: {"method": "topsis", "scale": 1}}
    )


def test_pipeline_weights_override_framework_weights(asem):
    fw, data = asem
    res = run(
        fw, data, {"steps": [{"step": "normalise"}, {"step": "aggregate", "weights": {"Conn": 3}}]}
    )
    conn, sust, idx = (res.values[:, res.codes.index(c)] for c in ("Conn", "Sust", "Index"))
    assert np.allclose(idx, (3 * conn + sust) / 4)


@pytest.mark.parametrize("method", ["entropy", "critic", "pca", "equal"])
def test_data_driven_weights_are_used_in_aggregation(asem, method):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "impute"},
                {"step": "normalise", "lower": 1, "upper": 100},
                {"step": "weights", "method": method},
                {"step": "aggregate"},
            ]
        },
    )
    kids = fw.children("Political")
    w = np.array([res.weights[k] for k in kids])
    assert np.isclose(w.sum(), 1)
    cols = [res.codes.index(k) for k in kids]
    assert np.allclose(res.values[:, res.codes.index("Political")], res.values[:, cols] @ w)


def test_ahp_weights_from_a_pairwise_matrix(asem):
    fw, data = asem
    m = [[1, 3], [1 / 3, 1]]
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "normalise"},
                {
                    "step": "weights",
                    "method": "equal",
                    "levels": {4: {"method": "ahp", "matrices": {"Index": m}}},
                },
                {"step": "aggregate"},
            ]
        },
    )
    assert np.isclose(res.weights["Conn"], 0.75) and np.isclose(res.weights["Sust"], 0.25)


def test_log_regenerates_the_same_result_and_variations(asem):
    fw, data = asem
    first = run(fw, data, "tests/index/data/coinr_full_pipeline.yaml")
    again = run(fw, data, {"steps": first.log})
    assert np.allclose(first.values, again.values, equal_nan=True)
    varied = regen(first, {"normalise": {"method": "zscore", "mean": 10, "sd": 2}})
    direct = run(
        fw,
        data,
        {
            "steps": [
                *first.log[:4],
                {"step": "normalise", "method": "zscore", "mean": 10, "sd": 2},
                {"step": "aggregate"},
            ]
        },
    )
    assert np.allclose(varied.values, direct.values, equal_nan=True)
    assert not np.allclose(varied.values, first.values, equal_nan=True)


def test_pipeline_yaml_roundtrip():
    pipe = Pipeline.load(
        {"steps": [{"step": "impute", "method": "group_mean", "group": "EurAsia_group"}]}
    )
    again = Pipeline.load(__import__("yaml").safe_load(pipe.to_yaml()))
    assert again.steps[0] == StepSpec(step="impute", method="group_mean", group="EurAsia_group")


def test_screen_drops_units_below_the_threshold(asem):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "screen", "min_data_availability": 0.95},
                {"step": "normalise"},
                {"step": "aggregate"},
            ]
        },
    )
    avail = 1 - np.isnan(data.values).mean(axis=1)
    assert set(res.data.units) == set(data.units[avail >= 0.95]) and res.data.n < data.n
    assert res.details["outcomes"][0]["removed"] == list(data.units[avail < 0.95])


def test_manual_weights_step_and_copeland(asem):
    fw, data = asem
    res = run(
        fw,
        data,
        {
            "steps": [
                {"step": "normalise"},
                {"step": "weights", "method": "manual", "weights": {"Sust": 2}},
                {"step": "aggregate", "levels": {4: {"method": "copeland"}}},
            ]
        },
    )
    assert res.weights["Sust"] == 2 and res.weights["Conn"] == 1
    idx = res.values[:, res.codes.index("Index")]
    # Copeland row sums of an outranking matrix: n(n-1)/2 in total over the units
    assert np.isclose(np.nansum(idx), 51 * 50 / 2)


def test_engine_imports_no_other_platform_package():
    import subprocess
    import sys

    code = (
        "import sys, rhip.index, rhip.index.cli, rhip.index.report, rhip.index.uncertainty;"
        "print([m for m in sys.modules"
        " if m.startswith('rhip.') and not m.startswith('rhip.index')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_panel_scope_normalises_over_all_years(asem_panel):
    fw, data = asem_panel
    per_year = run(fw, data, {"steps": [{"step": "normalise"}, {"step": "aggregate"}]})
    panel = run(
        fw, data, {"steps": [{"step": "normalise", "scope": "panel"}, {"step": "aggregate"}]}
    )
    j = per_year.codes.index("LPI")
    years = np.unique(data.times)
    assert all(np.nanmax(per_year.values[data.times == y, j]) == 100 for y in years)
    assert np.nanmax(panel.values[:, j]) == 100
    assert sum(np.nanmax(panel.values[data.times == y, j]) == 100 for y in years) < len(years)
