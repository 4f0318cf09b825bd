"""Normalisers, treatment statistics, imputers and aggregators on small, checkable inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from rhip.index.framework import Node
from rhip.index.steps.aggregate import a_copeland, weighted_mean
from rhip.index.steps.normalise import NORMALISERS
from rhip.index.steps.treat import kurt, log_transform, skew, winsorise

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def _norm(name, X, d=None, nodes=None, **params):
    m = NORMALISERS[name]
    X = np.asarray(X, float)
    d = np.ones(X.shape[1]) if d is None else np.asarray(d, float)
    nodes = nodes or [Node(code=f"i{j}", name="", kind="Indicator") for j in range(X.shape[1])]
    return m.fn(X, d, nodes, m.params(**params))


@settings(max_examples=60, deadline=None)
@given(arrays(float, (12, 3), elements=finite), st.floats(-50, 50), st.floats(1, 100))
def test_minmax_maps_onto_the_interval_and_keeps_order(X, lower, width):
    y = _norm("minmax", X, lower=lower, upper=lower + width)
    for j in range(3):
        if np.ptp(X[:, j]) > 1e-9 * max(1.0, np.abs(X[:, j]).max()):
            assert np.isclose(np.nanmin(y[:, j]), lower) and np.isclose(
                np.nanmax(y[:, j]), lower + width
            )
            assert np.all(np.diff(y[np.argsort(X[:, j], kind="stable"), j]) >= -1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(float, (10, 2), elements=finite))
def test_negative_direction_reverses_the_order(X):
    up = _norm("minmax", X)
    down = _norm("minmax", X, d=[-1, -1])
    ok = np.ptp(X, axis=0) > 1e-6 * np.maximum(1.0, np.abs(X).max(axis=0))
    assert np.allclose((up + down)[:, ok], 100.0)


def test_zscore_uses_sample_sd_and_target_moments():
    X = np.array([[1.0], [2.0], [4.0], [9.0], [np.nan]])
    y = _norm("zscore", X, mean=10, sd=2)[:4, 0]
    assert np.isclose(y.mean(), 10) and np.isclose(y.std(ddof=1), 2)


def test_rank_percentile_and_borda_share_ties_at_lowest_rank():
    X = np.array([[3.0], [1.0], [3.0], [np.nan], [7.0]])
    assert _norm("rank", X)[:, 0].tolist()[:3] == [2.0, 1.0, 2.0]
    assert np.isnan(_norm("rank", X)[3, 0])
    assert _norm("borda", X)[[0, 1, 2, 4], 0].tolist() == [1.0, 0.0, 1.0, 3.0]
    assert _norm("percentile_rank", X)[[1, 4], 0].tolist() == [0.0, 1.0]


def test_goalposts_are_fixed_clipped_and_direction_aware():
    nodes = [
        Node("a", "", "Indicator", goalpost_low=0, goalpost_high=50),
        Node("b", "", "Indicator", direction=-1, goalpost_low=0, goalpost_high=10),
    ]
    y = _norm("goalposts", [[25, 2], [60, 12]], d=[1, -1], nodes=nodes)
    assert y.tolist() == [[50.0, 80.0], [100.0, 0.0]]


def test_distance_to_target_reference_and_max():
    nodes = [Node("a", "", "Indicator", target=10)]
    X = [[2.0], [6.0], [12.0]]
    assert np.allclose(_norm("dist_target", X, nodes=nodes, cap=True)[:, 0], [0, 0.5, 1.0])
    assert np.allclose(_norm("dist_max", X)[:, 0], [0, 0.4, 1.0])
    m = NORMALISERS["dist_ref"]
    y = m.fn(np.array(X), np.ones(1), nodes, m.params(unit="B"), units=np.array(["A", "B", "C"]))
    assert np.allclose(y[:, 0], [0, 1, 2.5])


@settings(max_examples=50, deadline=None)
@given(arrays(float, 15, elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_skew_and_kurtosis_are_the_type_2_estimators(x):
    if np.ptp(x) < 1e-3:
        return
    assert np.isclose(skew(x), stats.skew(x, bias=False), rtol=1e-7, atol=1e-9)
    assert np.isclose(kurt(x), stats.kurtosis(x, bias=False), rtol=1e-7, atol=1e-9)


def test_winsorise_replaces_the_outlier_by_the_next_value():
    x = np.array([*range(1, 21), 60.0, 80.0, 100.0])
    xw, n = winsorise(x, 5, 2.0, 3.5)
    # 100 → 80, then the two tied 80s → 60 (COINr counts the tied extreme: 2 points)
    assert n == 2 and sorted(xw)[-4:] == [20.0, 60.0, 60.0, 60.0]
    xw1, n1 = winsorise(x, 1, 2.0, 3.5)
    assert n1 == 1 and sorted(xw1)[-3:] == [60.0, 80.0, 80.0]


def test_log_ct_plus_is_skew_aware():
    x = np.array([1.0, 2, 3, 4, 50])
    assert np.allclose(log_transform(x, "log_CT"), np.log(x - 1 + 0.49))
    assert np.allclose(log_transform(-x, "log_CT_plus"), -np.log(-1 + 0.49 + x))


def test_means_ignore_missing_children_and_renormalise_weights():
    C = np.array([[10.0, np.nan, 40.0], [1.0, 2.0, 4.0]])
    W = np.array([[1.0], [5.0], [3.0]])
    assert np.allclose(weighted_mean(C, W, "arithmetic")[:, 0], [(10 + 120) / 4, (1 + 10 + 12) / 9])
    assert np.allclose(
        weighted_mean(C, W, "geometric")[1, 0],
        np.exp((np.log(1) + 5 * np.log(2) + 3 * np.log(4)) / 9),
    )
    assert np.allclose(weighted_mean(C, W, "harmonic")[1, 0], 9 / (1 + 5 / 2 + 3 / 4))
    assert np.allclose(weighted_mean(C, W, "generalised", 1.0), weighted_mean(C, W, "arithmetic"))
    assert np.allclose(weighted_mean(C, W, "generalised", -1.0), weighted_mean(C, W, "harmonic"))
    assert np.allclose(
        weighted_mean(C, W, "generalised", 1e-9), weighted_mean(C, W, "geometric"), rtol=1e-6
    )


def test_batched_weights_give_one_result_per_replication():
    C = np.array([[1.0, 3.0], [2.0, 2.0]])
    W = np.array([[[1.0], [1.0]], [[3.0], [1.0]]])  # two replications
    out = weighted_mean(np.broadcast_to(C, (2, 2, 2)), W, "arithmetic")
    assert out[:, 0, 0].tolist() == [2.0, 1.5]


def test_copeland_counts_weighted_pairwise_wins():
    X = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    # A beats B on x1 (w .75), loses on x2; A vs C same; B vs C: beats on x1, loses x2
    assert np.allclose(a_copeland(X, np.array([3.0, 1.0])), [1.5, 1.0, 0.5])


@pytest.mark.parametrize("name", ["mean", "median"])
def test_imputers_fill_with_the_yearly_statistic(name, asem):
    from rhip.index.steps.prepare import IMPUTERS

    fw, data = asem
    X = data.values.copy()
    col = fw.indicators.index("ConSpeed")
    out = IMPUTERS[name].fn(data, X.copy(), None)
    fill = np.nanmean(X[:, col]) if name == "mean" else np.nanmedian(X[:, col])
    assert np.allclose(out[np.isnan(X[:, col]), col], fill)
    assert not np.isnan(out).any()


def test_latest_year_imputation_carries_the_previous_value(asem_panel):
    from rhip.index.steps.prepare import IMPUTERS

    _, data = asem_panel
    X = data.values.copy()
    i = int(np.flatnonzero((data.units == "AUT") & (data.times == 2022))[0])
    j = int(np.flatnonzero((data.units == "AUT") & (data.times == 2021))[0])
    X[i, 0] = np.nan
    out = IMPUTERS["latest"].fn(data, X, IMPUTERS["latest"].params())
    assert out[i, 0] == data.values[j, 0]
