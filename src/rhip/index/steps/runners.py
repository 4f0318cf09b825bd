"""Step runners: apply one step spec to the pipeline state and record what was done.

`STEPS` is the registry of step names; each runner resolves its method from the method
registry (typed params), applies it globally with per-indicator / per-level exceptions, and
appends the fully-resolved settings to `state.log`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rhip.index.errors import IndexInputError
from rhip.index.framework import Framework
from rhip.index.io import Dataset
from rhip.index.steps import prepare
from rhip.index.steps.aggregate import AGGREGATORS, AggPlan, LevelMethod, aggregate_tree, make_plan
from rhip.index.steps.base import Params, resolve
from rhip.index.steps.normalise import NORMALISERS
from rhip.index.steps.treat import TREATMENTS
from rhip.index.steps.weights import WEIGHTERS, AHPParams, ManualParams, check_pairwise

STEPS: dict[str, Callable[..., None]] = {}


@dataclass
class State:
    """What the steps work on: the current data, weights, and everything recorded so far."""

    fw: Framework
    input_data: Dataset
    data: Dataset
    plan: AggPlan
    weights: np.ndarray  # one per node, in plan.codes order
    weight_rules: dict[int, tuple[str, Params]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    normalised: bool = False
    scores: np.ndarray | None = None

    @classmethod
    def start(cls, fw: Framework, data: Dataset) -> State:
        plan = make_plan(fw)
        w = np.array([fw.nodes[c].weight for c in plan.codes], dtype=float)
        return cls(fw, data, data.take(np.ones(data.n, dtype=bool)), plan, w)

    def nodes(self, cols: np.ndarray | list[int] | None = None) -> list:
        codes = self.fw.indicators if cols is None else [self.fw.indicators[j] for j in cols]
        return [self.fw.nodes[c] for c in codes]


def step(name: str):
    def wrap(fn):
        STEPS[name] = fn
        return fn

    return wrap


def _column_plan(state: State, spec, params: dict, default: str, where: str, registry, kind: str):
    """Group indicator columns by (method, params): global setting plus per-indicator exceptions."""
    glob = spec.method or default
    for code in spec.indicators:
        if code not in state.fw.indicators:
            raise IndexInputError(
                f"unknown indicator {code!r} in per-indicator settings",
                file=where,
                column="indicators",
            )
    groups: dict[str, tuple[Any, Params, list[int]]] = {}
    for j, code in enumerate(state.fw.indicators):
        own = spec.indicators.get(code)
        if own is None:
            name, raw = glob, dict(params)
        elif own.get("method", glob) != glob:  # another method: its own params only
            name, raw = own["method"], {k: v for k, v in own.items() if k != "method"}
        else:
            name, raw = glob, {**params, **{k: v for k, v in own.items() if k != "method"}}
        method, p = resolve(registry, kind, name, raw, where)
        key = f"{name}|{p.model_dump_json()}"
        groups.setdefault(key, (method, p, []))[2].append(j)
    return list(groups.values())


def _record(state: State, spec, outcome: dict[str, Any] | None = None, **settings: Any) -> None:
    """Append the step's full settings to the replayable log; what it did goes to details."""
    entry = {"step": spec.step, **settings}
    state.details.setdefault("outcomes", []).append({"step": spec.step, **(outcome or {})})
    if spec.indicators:
        entry["indicators"] = spec.indicators
    if spec.levels:
        entry["levels"] = {int(k): v for k, v in spec.levels.items()}
    state.log.append(entry)


@step("denominate")
def run_denominate(state: State, spec, where: str) -> None:
    """Divide indicators by their framework Denominator column."""
    only = spec.params.get("only")
    X, done = prepare.denominate(state.data, state.nodes(), set(only) if only else None)
    state.data.values = X
    _record(state, spec, outcome={"denominated": done}, **spec.params)


@step("impute")
def run_impute(state: State, spec, where: str) -> None:
    """Fill missing values by the chosen imputer (per indicator exceptions allowed)."""
    X = state.data.values.copy()
    for method, params, cols in _column_plan(
        state, spec, spec.params, "mean", where, prepare.IMPUTERS, "impute"
    ):
        block = method.fn(state.data, X[:, cols].copy(), params)
        X[:, cols] = block
    n_filled = int(np.isnan(state.data.values).sum() - np.isnan(X).sum())
    state.data.values = X
    _record(state, spec, outcome={"filled": n_filled}, method=spec.method or "mean", **spec.params)


class ScreenParams(Params):
    min_data_availability: float = 2 / 3  # COINr default dat_thresh
    min_nonzero: float | None = None  # optional COINr nonzero_thresh
    force_include: tuple[str, ...] = ()
    force_exclude: tuple[str, ...] = ()
    action: str = "drop"  # or "error": a unit with too little data stops the build


@step("screen")
def run_screen(state: State, spec, where: str) -> None:
    """Drop units (rows) whose indicator data availability is below the threshold."""
    _, p = resolve({"screen": _SCREEN}, "screen", "screen", spec.params, where)
    X, data = state.data.values, state.data
    avail, nonzero = prepare.availability(X), prepare.nonzero_share(X)
    keep = avail >= p.min_data_availability
    if p.min_nonzero is not None:
        keep &= nonzero >= p.min_nonzero
    keep |= np.isin(data.units, p.force_include)
    keep &= ~np.isin(data.units, p.force_exclude)
    if p.action == "error" and not keep.all():
        i = int(np.flatnonzero(~keep)[0])
        raise IndexInputError(
            f"unit {data.units[i]!r} has too little data: availability {avail[i]:.2f} "
            f"< {p.min_data_availability}",
            file=data.file,
            row=None if data.rows is None else int(data.rows[i]),
            column="uCode",
        )
    removed = [
        {
            "uCode": data.units[i],
            "Time": None if data.times is None else data.times[i],
            "availability": float(avail[i]),
        }
        for i in np.flatnonzero(~keep)
    ]
    state.data = data.take(keep)
    state.details.setdefault("screened_out", []).extend(removed)
    _record(state, spec, outcome={"removed": [str(r["uCode"]) for r in removed]}, **p.model_dump())


_SCREEN = type("ScreenMethod", (), {})()
_SCREEN.params = ScreenParams  # resolve() only needs .params


@step("treat")
def run_treat(state: State, spec, where: str) -> None:
    """Outlier treatment per indicator and per year (COINr Treat)."""
    X = state.data.values.copy()
    table = []
    for method, params, cols in _column_plan(
        state, spec, spec.params, "skew_kurt", where, TREATMENTS, "treat"
    ):
        for rows in prepare.year_blocks(state.data):
            for j in cols:
                out = method.fn(X[rows, j].copy(), params)
                X[rows, j] = out.x
                table.append(
                    {
                        "iCode": state.fw.indicators[j],
                        "block": int(rows[0]),
                        "method": method.name,
                        "skew": out.skew,
                        "kurtosis": out.kurt,
                        "winsorised": out.n_winsorised,
                        "transform": out.transform,
                        "passes": out.passing,
                    }
                )
    state.data.values = X
    state.details["treatment"] = table
    _record(state, spec, method=spec.method or "skew_kurt", **spec.params)


@step("normalise")
def run_normalise(state: State, spec, where: str) -> None:
    """Normalise each indicator (per year, or over the whole panel with scope: panel)."""
    params = spec.params
    scope = params.pop("scope", "year")
    if scope not in ("year", "panel"):
        raise IndexInputError(
            f"scope must be 'year' or 'panel', not {scope!r}", file=where, column="scope"
        )
    X = state.data.values
    out = np.full_like(X, np.nan)
    d = np.array(state.fw.directions(), dtype=float)
    blocks = prepare.year_blocks(state.data) if scope == "year" else [np.arange(state.data.n)]
    for method, p, cols in _column_plan(
        state, spec, params, "minmax", where, NORMALISERS, "normalise"
    ):
        for rows in blocks:
            out[np.ix_(rows, cols)] = method.fn(
                X[np.ix_(rows, cols)], d[cols], state.nodes(cols), p, units=state.data.units[rows]
            )
    state.data.values = out
    state.normalised = True
    _record(state, spec, method=spec.method or "minmax", scope=scope, **params)


@step("weights")
def run_weights(state: State, spec, where: str) -> None:
    """Set weights: manual/expert, equal, AHP now; entropy, CRITIC, PCA from data at aggregation."""
    default = {"method": spec.method or "equal", **spec.params}
    rules = {  # a level with another method takes only its own params
        lvl: {**default, **lv}
        if lv.get("method", default["method"]) == default["method"]
        else dict(lv)
        for lvl, lv in spec.levels.items()
    }
    for lp in state.plan.levels:
        raw = dict(rules.get(lp.level, default))
        name = raw.pop("method") or "equal"
        if name == "manual":
            _, p = resolve({"manual": _manual}, "weights", "manual", raw, where)
            _set_manual(state, p, where)
        elif name == "ahp":
            _, p = resolve({"ahp": _ahp}, "weights", "ahp", raw, where)
            _set_ahp(state, p, lp, where)
        else:
            _, p = resolve(WEIGHTERS, "weights", name, raw, where)
            state.weight_rules[lp.level] = (name, p)
    _record(state, spec, method=spec.method or "equal", **spec.params)


_manual = type("M", (), {"params": ManualParams})()
_ahp = type("A", (), {"params": AHPParams})()


def _set_manual(state: State, p: ManualParams, where: str) -> None:
    for code, w in p.weights.items():
        if code not in state.plan.codes:
            raise IndexInputError(
                f"weight for unknown code {code!r}", file=where, row=code, column="weights"
            )
        if not w > 0:
            raise IndexInputError(
                f"weight of {code!r} must be positive, got {w}",
                file=where,
                row=code,
                column="weights",
            )
        state.weights[state.plan.codes.index(code)] = w


def _set_ahp(state: State, p: AHPParams, lp, where: str) -> None:
    for parent in lp.parents:
        if parent in p.matrices:
            kids = state.fw.children(parent)
            w = check_pairwise(p.matrices[parent], parent, kids, where, p.max_cr)
            for code, wk in zip(kids, w, strict=True):
                state.weights[state.plan.codes.index(code)] = wk


def aggregate_settings(
    state: State, spec, where: str
) -> tuple[dict[int, LevelMethod], float | None, dict]:
    """Resolve an aggregate spec: method per level, data threshold, weight overrides (applied)."""
    params = spec.params
    extra_w = params.pop("weights", None)
    dat_thresh = params.pop("dat_thresh", None)
    if extra_w:
        _set_manual(state, ManualParams(weights=extra_w), where)
    glob = spec.method or "arithmetic"
    methods = {}
    for lp in state.plan.levels:
        own = spec.levels.get(lp.level)
        if own is None:
            name, raw = glob, dict(params)
        elif own.get("method", glob) != glob:
            name, raw = own["method"], {k: v for k, v in own.items() if k != "method"}
        else:
            name, raw = glob, {**params, **{k: v for k, v in own.items() if k != "method"}}
        method, p = resolve(AGGREGATORS, "aggregate", name, raw, where)
        methods[lp.level] = LevelMethod(method.name, p)
    return methods, dat_thresh, {"weights": extra_w} if extra_w else {}


@step("aggregate")
def run_aggregate(state: State, spec, where: str) -> None:
    """Aggregate up the tree; `weights: {code: w}` overrides framework weights."""
    methods, dat_thresh, extra = aggregate_settings(state, spec, where)
    hook = _weight_hook(state) if state.weight_rules else None
    state.scores = aggregate_tree(
        state.data.values,
        state.plan,
        state.weights,
        methods,
        blocks=prepare.year_blocks(state.data),
        dat_thresh=dat_thresh,
        weight_hook=hook,
    )
    state.details["weights"] = dict(zip(state.plan.codes, state.weights.tolist(), strict=True))
    params = {k: v for k, v in spec.params.items() if k not in ("weights", "dat_thresh")}
    _record(
        state,
        spec,
        method=spec.method or "arithmetic",
        **params,
        **({"dat_thresh": dat_thresh} if dat_thresh is not None else {}),
        **extra,
    )


def _weight_hook(state: State):
    def hook(lp, C, weights):
        if lp.level not in state.weight_rules:
            return weights
        name, p = state.weight_rules[lp.level]
        for k in range(len(lp.parents)):
            cols = np.flatnonzero(lp.member[:, k])
            state.weights[lp.child_idx[cols]] = WEIGHTERS[name].fn(C[:, cols], p)
        return state.weights.copy()

    return hook
