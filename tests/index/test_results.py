"""Scores, ranks, CSV output, year-on-year change, strengths/weaknesses and analysis."""

import numpy as np
import pandas as pd
import pytest

from rhip.index import run
from rhip.index.analysis import cronbach_alpha, group_statistics, parent_correlations
from rhip.index.results import rank_desc


def test_ranks_highest_first_ties_share_lowest():
    got = rank_desc(np.array([[5.0], [7.0], [5.0], [1.0], [np.nan]]))[:, 0]
    assert got[:4].tolist() == [2, 1, 2, 4] and np.isnan(got[4])


def test_scores_and_ranks_csv(tmp_path, asem):
    fw, data = asem
    res = run(fw, data)
    scores_path, ranks_path = res.write_csv(tmp_path)
    scores, ranks = pd.read_csv(scores_path), pd.read_csv(ranks_path)
    assert list(scores.columns) == ["uCode", *fw.indicators, *fw.aggregates]
    assert list(ranks.columns) == list(scores.columns) and len(scores) == 51
    # at least 10 significant digits survive the round trip
    assert np.allclose(scores[fw.aggregates].to_numpy(), res.values[:, 49:], rtol=1e-10, atol=0)
    top = scores.loc[scores["Index"].idxmax(), "uCode"]
    assert ranks.loc[ranks["uCode"] == top, "Index"].item() == 1


def test_panel_output_has_time_and_yearly_ranks(asem_panel):
    fw, data = asem_panel
    res = run(fw, data)
    s, r = res.scores(), res.ranks()
    assert list(s.columns[:2]) == ["uCode", "Time"] and len(s) == 255
    for _, g in r.groupby("Time"):
        assert sorted(g["Index"].tolist()) == list(range(1, 52))


def test_year_on_year_changes(asem_panel):
    fw, data = asem_panel
    res = run(fw, data)
    ch = res.changes()
    s = res.scores().set_index(["uCode", "Time"])["Index"]
    row = ch[(ch.uCode == "AUT") & (ch.code == "Index") & (ch.Time == 2020)].iloc[0]
    assert np.isclose(row.score_change, s[("AUT", 2020)] - s[("AUT", 2019)])
    r = res.ranks().set_index(["uCode", "Time"])["Index"]
    assert row.rank_change == r[("AUT", 2019)] - r[("AUT", 2020)]
    first = ch[(ch.Time == 2018)]
    assert first.score_change.isna().all()


def test_strengths_and_weaknesses(asem):
    fw, data = asem
    res = run(fw, data)
    sw = res.strengths_weaknesses("DEU", n=3)
    ranks = res.ranks().set_index("uCode").loc["DEU", fw.indicators].astype(float)
    assert [s["rank"] for s in sw["strengths"]] == sorted(ranks)[:3]
    assert [w["rank"] for w in sw["weaknesses"]] == sorted(ranks)[::-1][:3]
    with pytest.raises(KeyError):
        res.strengths_weaknesses("XXX")


def test_cronbach_alpha_formula():
    X = np.array([[2.0, 3, 3], [4, 4, 5], [5, 6, 6], [1, 2, 1], [3, 3, 4]])
    k = 3
    expected = k / (k - 1) * (1 - X.var(axis=0, ddof=1).sum() / X.sum(axis=1).var(ddof=1))
    assert np.isclose(cronbach_alpha(X), expected) and 0.9 < expected < 1


def test_group_statistics_and_correlations(asem):
    fw, data = asem
    res = run(fw, data)
    stats = group_statistics(res).set_index("code")
    assert set(stats.index) == set(fw.aggregates)
    assert (
        stats.loc["Index", "children"] == 2 and 0.5 < stats.loc["Index", "pc1_variance_share"] <= 1
    )
    corr = parent_correlations(res).set_index("code")
    conn, idx = res.values[:, res.codes.index("Conn")], res.values[:, res.codes.index("Index")]
    assert np.isclose(corr.loc["Conn", "r_parent"], np.corrcoef(conn, idx)[0, 1])
