"""Shared pieces of the pipeline steps: method registries with typed (pydantic) parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rhip.index.errors import IndexInputError


class Params(BaseModel):
    """Base of every method's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Method:
    """A named, typed method: `fn` takes data plus a validated `params` instance."""

    name: str
    params: type[Params]
    fn: Callable[..., Any]
    doc: str = ""


def register(
    registry: dict[str, Method], name: str, params: type[Params] = NoParams, doc: str = ""
):
    """Decorator adding `fn` to `registry` under `name`."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        registry[name] = Method(name, params, fn, doc or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap


def resolve(
    registry: dict[str, Method], kind: str, name: str, raw: dict[str, Any], where: str = ""
) -> tuple[Method, Params]:
    """Look up `name` in `registry` and validate `raw` against its parameter model."""
    if name not in registry:
        raise IndexInputError(
            f"unknown {kind} method {name!r}; choose one of {sorted(registry)}",
            file=where or None,
            column="method",
        )
    method = registry[name]
    try:
        return method, method.params(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise IndexInputError(
            f"bad parameters for {kind} {name!r}: {problems}", file=where or None
        ) from None
