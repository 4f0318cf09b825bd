"""Uncertainty and sensitivity analysis: batched engine equals full rebuilds; intervals are sane."""

from pathlib import Path

import numpy as np
import pytest

from rhip.index import run
from rhip.index.uncertainty import (
    UncertaintySpec,
    evaluate,
    random_design,
    sensitivity,
    uncertainty,
)

FULL = Path(__file__).parent / "data" / "coinr_full_pipeline.yaml"
SPEC = UncertaintySpec(
    replications=200,
    weight_noise=0.25,
    normalisers=[
        {"method": "minmax", "lower": 1, "upper": 100},
        {"method": "zscore", "mean": 10, "sd": 2},
    ],
    aggregators=["arithmetic", "geometric"],
    winmax=[1, 2, 3, 4, 5],
)


@pytest.fixture(scope="module")
def base(asem):
    fw, data = asem
    return run(fw, data, FULL)


def test_batched_engine_equals_rebuilding_each_replication(base):
    spec = SPEC.model_copy(update={"replications": 24})
    design = random_design(spec, len(base.codes), 24, np.random.default_rng(5))
    fast = evaluate(base, spec, design, "batch")
    slow = evaluate(base, spec, design, "rebuild")
    assert fast.shape == (24, 51)
    assert np.allclose(fast, slow, rtol=1e-12, atol=1e-9, equal_nan=True)


def test_rank_intervals_bracket_the_median(base):
    ua = uncertainty(base, SPEC)
    t = ua.table
    assert len(t) == 51 and ua.ranks.shape[1] == 51 and ua.failed < 200
    assert (t.q05_rank <= t.median_rank).all() and (t.median_rank <= t.q95_rank).all()
    assert (t.q95_rank > t.q05_rank).any()  # something actually varies
    assert t.nominal_rank.tolist() == sorted(t.nominal_rank.tolist())


def test_nothing_uncertain_means_every_replication_is_nominal(base):
    spec = UncertaintySpec(replications=20, weight_noise=None)
    ua = uncertainty(base, spec)
    assert (ua.table.q05_rank == ua.table.nominal_rank).all()
    assert (ua.table.q95_rank == ua.table.nominal_rank).all()


def test_single_input_explains_all_variance(base):
    spec = UncertaintySpec(
        weight_noise=None,
        aggregators=["arithmetic", "geometric"],
        normalisers=[{"method": "minmax", "lower": 1, "upper": 100}],
    )
    sa = sensitivity(base, spec, n=200, bootstrap=20)
    assert sa["input"].tolist() == ["aggregators"]
    assert np.isclose(sa["ST_i"].item(), 1.0, atol=0.15) and np.isclose(
        sa["S_i"].item(), 1.0, atol=0.25
    )


def test_sensitivity_ranks_inputs(base):
    sa = sensitivity(base, SPEC, n=300, bootstrap=20).set_index("input")
    assert list(sa.index) == ["weights", "normalisers", "aggregators", "winmax"]
    assert (sa["ST_i"] >= 0).all()
    assert sa.loc["aggregators", "ST_i"] > sa.loc["winmax", "ST_i"]


def test_imputation_alternatives_are_an_uncertain_input(asem):
    fw, data = asem
    base = run(
        fw,
        data,
        {
            "steps": [
                {"step": "impute", "method": "mean"},
                {"step": "normalise"},
                {"step": "aggregate"},
            ]
        },
    )
    spec = UncertaintySpec(
        replications=40,
        weight_noise=None,
        imputation=[
            {"method": "mean"},
            {"method": "median"},
            {"method": "group_mean", "group": "EurAsia_group"},
        ],
    )
    design = random_design(spec, len(base.codes), 40, np.random.default_rng(2))
    fast = evaluate(base, spec, design, "batch")
    assert np.allclose(fast, evaluate(base, spec, design, "rebuild"), equal_nan=True)
    assert len({tuple(np.round(r, 9)) for r in fast}) == 3  # three distinct imputations
