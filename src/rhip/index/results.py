"""Results (结果): scores and ranks at every level, yearly change, strengths and weaknesses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from rhip.index.framework import Framework
from rhip.index.io import Dataset
from rhip.index.steps.prepare import year_blocks


def rank_desc(values: np.ndarray) -> np.ndarray:
    """Ranks down columns: highest = 1, ties share the lowest rank, NaN stays NaN.

    >>> rank_desc(np.array([[3.0], [5.0], [3.0], [np.nan]])).ravel().tolist()
    [2.0, 1.0, 2.0, nan]
    """
    return rankdata(-values, method="min", axis=0, nan_policy="omit").astype(float)


@dataclass
class IndexResult:
    """A built index: the framework, the data it was built from, scores and the replayable log."""

    framework: Framework
    input_data: Dataset
    data: Dataset  # rows that survived screening, values as they entered aggregation
    codes: list[str]
    values: np.ndarray  # rows × codes: normalised indicators then aggregate scores
    pipeline: Any  # the Pipeline that was run
    log: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state, pipeline) -> IndexResult:
        return cls(
            state.fw,
            state.input_data,
            state.data,
            list(state.plan.codes),
            state.scores,
            pipeline,
            state.log,
            state.details,
            state.details.get("weights", {}),
        )

    @property
    def panel(self) -> bool:
        return self.data.times is not None and len(np.unique(self.data.times)) > 1

    @property
    def ranks_array(self) -> np.ndarray:
        out = np.full_like(self.values, np.nan)
        for rows in year_blocks(self.data):
            out[rows] = rank_desc(self.values[rows])
        return out

    def _frame(self, values: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(values, columns=self.codes)
        df.insert(0, "uCode", self.data.units.astype(str))
        if self.panel:
            df.insert(1, "Time", self.data.times)
        return df

    def scores(self) -> pd.DataFrame:
        """uCode, [Time], every indicator as it entered aggregation, every aggregate's score."""
        return self._frame(self.values)

    def ranks(self) -> pd.DataFrame:
        """Same shape as `scores()`, ranks within each year (highest = 1)."""
        df = self._frame(self.ranks_array)
        return df.astype({c: "Int64" for c in self.codes})

    def index(self, code: str | None = None) -> pd.Series:
        """The top-level score per unit (latest year for panels)."""
        code = code or self.framework.root
        df = self.scores()
        if self.panel:
            df = df[df["Time"] == df["Time"].max()]
        return df.set_index("uCode")[code]

    def table(self, time: float | None = None) -> pd.DataFrame:
        """Ranking table: unit, name, index score and rank, then each aggregate's score."""
        rows = np.arange(self.data.n)
        if self.panel:
            time = self.data.times.max() if time is None else time
            rows = np.flatnonzero(self.data.times == time)
        aggs = [c for c in self.framework.aggregates[::-1]]
        cols = [self.codes.index(c) for c in aggs]
        df = pd.DataFrame(self.values[np.ix_(rows, cols)], columns=aggs)
        ranks = self.ranks_array[rows, self.codes.index(self.framework.root)]
        df.insert(0, "Rank", ranks)
        df.insert(0, "uName", self.data.names[rows].astype(str))
        df.insert(0, "uCode", self.data.units[rows].astype(str))
        return df.sort_values(["Rank", "uCode"]).reset_index(drop=True)

    def changes(self) -> pd.DataFrame:
        """Year-on-year change of score and rank for every unit and node (panel data only)."""
        if not self.panel:
            return pd.DataFrame(
                columns=["uCode", "Time", "code", "score", "score_change", "rank", "rank_change"]
            )
        s = self.scores().melt(id_vars=["uCode", "Time"], var_name="code", value_name="score")
        r = self.ranks().melt(id_vars=["uCode", "Time"], var_name="code", value_name="rank")
        df = s.merge(r, on=["uCode", "Time", "code"]).sort_values(["uCode", "code", "Time"])
        g = df.groupby(["uCode", "code"], sort=False)
        df["score_change"] = g["score"].diff()
        # positive rank change = moved up the table
        df["rank_change"] = -g["rank"].diff().astype("Float64")
        return df.reset_index(drop=True)[
            ["uCode", "Time", "code", "score", "score_change", "rank", "rank_change"]
        ]

    def strengths_weaknesses(
        self, unit: str, n: int = 3, time: float | None = None
    ) -> dict[str, list]:
        """The unit's `n` best- and worst-ranked indicators (COINr get_str_weak)."""
        rows = np.flatnonzero(self.data.units == unit)
        if self.panel:
            time = self.data.times[rows].max() if time is None else time
            rows = rows[self.data.times[rows] == time]
        if len(rows) == 0:
            raise KeyError(f"unit {unit!r} is not in the results")
        ranks = self.ranks_array[rows[0], : len(self.framework.indicators)]
        order = [j for j in np.argsort(ranks, kind="stable") if not np.isnan(ranks[j])]

        def pick(js: list[int]) -> list[dict]:
            return [
                {
                    "code": self.codes[j],
                    "name": self.framework.nodes[self.codes[j]].name,
                    "rank": int(ranks[j]),
                }
                for j in js
            ]

        return {"strengths": pick(order[:n]), "weaknesses": pick(order[::-1][:n])}

    def write_csv(self, out: str | Path) -> tuple[Path, Path]:
        """scores.csv and ranks.csv, numbers with 15 significant digits."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.scores().to_csv(out / "scores.csv", index=False, float_format="%.15g")
        self.ranks().to_csv(out / "ranks.csv", index=False)
        return out / "scores.csv", out / "ranks.csv"
