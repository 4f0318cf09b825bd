"""Entropy, CRITIC, AHP and TOPSIS agree with pymcdm on the same inputs."""

import numpy as np
import pytest
from pymcdm import normalizations, weights
from pymcdm.methods import TOPSIS
from pymcdm.weights.subjective import AHP

from rhip.index.steps.aggregate import a_topsis
from rhip.index.steps.weights import ahp_weights, w_critic, w_entropy, w_pca


@pytest.fixture
def matrix():
    rng = np.random.default_rng(7)
    return rng.uniform(1, 100, size=(25, 5))


def test_entropy_weights_match_pymcdm(matrix):
    assert np.allclose(w_entropy(matrix), weights.entropy_weights(matrix), atol=1e-12)


def test_critic_weights_match_pymcdm(matrix):
    assert np.allclose(w_critic(matrix), weights.critic_weights(matrix), atol=1e-12)


SAATY = np.array([[1, 3, 5, 7], [1 / 3, 1, 3, 5], [1 / 5, 1 / 3, 1, 3], [1 / 7, 1 / 5, 1 / 3, 1]])


def test_ahp_weights_and_consistency_ratio_match_pymcdm():
    ref = AHP(matrix=SAATY)
    w, cr = ahp_weights(SAATY)
    assert np.allclose(w, ref(), atol=1e-12)
    assert np.isclose(cr, ref.get_cr(), atol=1e-12) and cr < 0.1


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("vector", normalizations.vector_normalization),
        ("minmax", normalizations.minmax_normalization),
    ],
)
def test_topsis_matches_pymcdm(matrix, ours, theirs):
    w = np.array([0.3, 0.2, 0.2, 0.2, 0.1])
    from rhip.index.steps.aggregate import TopsisParams

    got = a_topsis(matrix, w, TopsisParams(normalisation=ours, scale=1.0))
    expected = TOPSIS(normalization_function=theirs)(matrix, w, np.ones(5, dtype=int))
    assert np.allclose(got, expected, atol=1e-12)


def test_pca_weights_sum_to_one_and_favour_the_common_factor():
    rng = np.random.default_rng(1)
    f = rng.normal(size=200)
    X = np.column_stack(
        [f + 0.1 * rng.normal(size=200), f + 0.1 * rng.normal(size=200), rng.normal(size=200)]
    )
    w = w_pca(X)
    assert np.isclose(w.sum(), 1) and w[2] < 0.05 < w[0]
