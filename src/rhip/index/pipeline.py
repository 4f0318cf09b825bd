"""The pipeline (构建流程): named steps run in order, recorded so the result can be regenerated.

A pipeline is a list of step specs, read from YAML:

    steps:
      - step: normalise
        method: minmax          # a name from the normaliser registry
        lower: 0                # method parameters, validated by the method's pydantic model
        upper: 100
        indicators:             # per-indicator exceptions
          Flights: {method: rank}
      - step: aggregate
        method: arithmetic
        levels: {4: {method: topsis}}   # per-level exceptions

`run` returns an `IndexResult` whose `log` is the list of steps with every default filled in;
`regen(result, changes)` re-runs that log with some steps' settings replaced (COINr's `Regen`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rhip.index.errors import IndexInputError
from rhip.index.framework import Framework
from rhip.index.io import Dataset
from rhip.index.steps import runners
from rhip.index.steps.runners import STEPS, State


class StepSpec(BaseModel):
    """One step: its name, an optional method, method params (extra keys) and exceptions."""

    model_config = ConfigDict(extra="allow")

    step: str
    method: str | None = None
    indicators: dict[str, dict[str, Any]] = Field(default_factory=dict)
    levels: dict[int, dict[str, Any]] = Field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Pipeline(BaseModel):
    """An ordered list of steps."""

    model_config = ConfigDict(extra="forbid")

    steps: list[StepSpec]
    source: str = ""

    @classmethod
    def load(
        cls, spec: Pipeline | dict | str | Path | None, fw: Framework | None = None
    ) -> Pipeline:
        """From a Pipeline, a dict, a YAML path, or None (the framework's default pipeline)."""
        if isinstance(spec, Pipeline):
            return spec
        source = ""
        if spec is None:
            spec = (fw.default_pipeline if fw else None) or {
                "steps": [{"step": "normalise", "method": "minmax"}, {"step": "aggregate"}]
            }
            source = f"{fw.source if fw else ''} (default pipeline)"
        elif isinstance(spec, str | Path):
            source = str(spec)
            try:
                spec = yaml.safe_load(Path(spec).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise IndexInputError(f"cannot read pipeline: {exc}", file=source) from None
        if isinstance(spec, list):
            spec = {"steps": spec}
        try:
            pipe = cls(**{**spec, "source": source or spec.get("source", "")})
        except (ValidationError, TypeError) as exc:
            raise IndexInputError(f"invalid pipeline: {exc}", file=source or None) from None
        for i, st in enumerate(pipe.steps):
            if st.step not in STEPS:
                raise IndexInputError(
                    f"unknown step {st.step!r}; choose one of {sorted(STEPS)}",
                    file=source or None,
                    row=f"steps[{i}]",
                    column="step",
                )
        return pipe

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            {"steps": [s.model_dump(exclude_defaults=True) for s in self.steps]},
            allow_unicode=True,
            sort_keys=False,
        )


def run(fw: Framework, data: Dataset, pipeline: Pipeline | dict | str | Path | None = None):
    """Build the index: run every step of `pipeline` on `data`, aggregating at the end if needed."""
    from rhip.index.results import IndexResult

    pipe = Pipeline.load(pipeline, fw)
    state = State.start(fw, data)
    for i, spec in enumerate(pipe.steps):
        where = f"{pipe.source or 'pipeline'} steps[{i}] ({spec.step})"
        STEPS[spec.step](state, spec, where)
    if state.scores is None:
        runners.run_aggregate(state, StepSpec(step="aggregate"), "(implicit aggregate)")
    return IndexResult.from_state(state, pipe)


def regen(result, changes: dict[int | str, dict[str, Any]] | None = None):
    """Re-run a result's recorded pipeline, replacing settings of some steps.

    `changes` maps a step position or step name to the keys to replace, e.g.
    `{"normalise": {"method": "zscore", "mean": 10, "sd": 2}}` (method params are reset when
    the method changes).
    """
    steps = [copy.deepcopy(s.model_dump()) for s in result.pipeline.steps]
    for key, new in (changes or {}).items():
        hits = [i for i, s in enumerate(steps) if i == key or s["step"] == key]
        if not hits:
            raise IndexInputError(f"no step {key!r} in the pipeline to change")
        for i in hits:
            if "method" in new and new["method"] != steps[i].get("method"):
                steps[i] = {
                    k: v for k, v in steps[i].items() if k in ("step", "indicators", "levels")
                }
            steps[i].update(new)
    return run(
        result.framework, result.input_data, {"steps": steps, "source": result.pipeline.source}
    )
