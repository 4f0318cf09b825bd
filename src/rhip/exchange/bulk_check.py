"""Compiled twins of ``fhir_validate.SHAPES`` for bulk import (批量校验).

``check_structure`` walks nested closures: ~13 calls per element, most of the bulk path's
validation time. Here each shape is generated once as straight-line Python source (one function
per resource type, nested elements inlined) that answers only *valid or not*. A resource it
passes is exactly one ``check_structure`` passes (the same rules, no more permissive); for one it
fails, ``check_structure`` runs to raise the error with its element path, so messages are the
same as before by construction.

>>> from rhip.exchange.bulk_check import check
>>> check({"resourceType": "Specimen", "type": {"text": "serum"}}, "x")["resourceType"]
'Specimen'
"""

from __future__ import annotations

import functools
from typing import Any

from rhip.exchange import fhir_validate as fv

# leaf shapes of fhir_validate by identity → the test on a value ``v`` (valid when true)
_LEAVES = {
    id(fv._STR): "type({v}) is str",
    id(fv._NUM): "(type({v}) is int or type({v}) is float)",
    id(fv._INT): "type({v}) is int",
    id(fv._BOOL): "type({v}) is bool",
}


def _source(name: str, spec: dict[str, Any], required: tuple[str, ...]) -> str:
    lines = [f"def {name}(v0):", " if type(v0) is not dict: return False"]
    _obj(lines, spec, required, 0, 1)
    lines.append(" return True")
    return "\n".join(lines)


def _obj(lines: list[str], spec, required, depth: int, indent: int) -> None:
    pad, v = " " * indent, f"v{depth}"
    for name in required:
        lines.append(f"{pad}if {v}.get({name!r}) is None: return False")
    for name, sub in spec.items():
        child = f"v{depth + 1}"
        lines.append(f"{pad}if {name!r} in {v}:")  # `in`: no method call for absent elements
        lines.append(f"{pad} {child} = {v}[{name!r}]")
        lines.append(f"{pad} if {child} is not None:")
        _shape(lines, sub, depth + 1, indent + 2)


def _shape(lines: list[str], shape, depth: int, indent: int) -> None:
    pad, v = " " * indent, f"v{depth}"
    leaf = _LEAVES.get(id(shape))
    if leaf is not None:
        lines.append(f"{pad}if not {leaf.format(v=v)}: return False")
        return
    kind, args = _describe(shape)
    if kind == "one_of":
        lines.append(f"{pad}if {v} not in {args!r}: return False")
    elif kind == "list":
        item = f"v{depth + 1}"
        lines.append(f"{pad}if type({v}) is not list: return False")
        lines.append(f"{pad}for {item} in {v}:")
        _shape(lines, args, depth + 1, indent + 1)
    else:  # an object
        spec, required = args
        lines.append(f"{pad}if type({v}) is not dict: return False")
        _obj(lines, spec, required, depth, indent)
        lines.append(f"{pad}pass")


def _describe(shape) -> tuple[str, Any]:
    """What a ``fhir_validate`` closure checks, read from its cell variables."""
    cells = dict(zip(shape.__code__.co_freevars, (c.cell_contents for c in shape.__closure__ or ()),
                     strict=True))  # fmt: skip
    if "values" in cells:
        return "one_of", tuple(cells["values"])
    if "item" in cells:
        return "list", cells["item"]
    if "spec" in cells:
        return "obj", (cells["spec"], cells["required"])
    raise TypeError(f"unknown shape {shape!r}")  # pragma: no cover - a new kind of shape


@functools.cache
def _compiled() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, shape in fv.SHAPES.items():
        _, (spec, required) = _describe(shape)
        name = f"_valid_{kind}"
        scope: dict[str, Any] = {}
        exec(_source(name, spec, required), scope)  # our own generated source
        out[kind] = scope[name]
    return out


def valid(resource: Any) -> bool:
    """Whether ``check_structure`` would accept ``resource`` (contained resources included)."""
    if type(resource) is not dict:
        return False
    shapes = _compiled()
    test = shapes.get(_kind(resource))
    if test is None or not test(resource):
        return False
    contained = resource.get("contained")
    if contained is None:
        return True
    if type(contained) is not list:
        return False
    for c in contained:
        inner = shapes.get(_kind(c)) if type(c) is dict else None
        if inner is None or not inner(c):
            return False
    return True


def _kind(resource: dict[str, Any]) -> str | None:
    kind = resource.get("resourceType")
    return kind if type(kind) is str else None


def check(resource: Any, path: str) -> dict[str, Any]:
    """``check_structure`` at the compiled speed: the same acceptance and the same errors."""
    if valid(resource):
        return resource
    return fv.check_structure(resource, path)
