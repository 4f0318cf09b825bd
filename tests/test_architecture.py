"""The import direction of ARCHITECTURE.md's bounded contexts, checked on the real import graph."""

from __future__ import annotations

import importlib.util

import grimp
import pytest

PLATFORM = [
    "registry",
    "identity",
    "exchange",
    "quality",
    "collaboration",
    "epidemic",
    "audit",
    "security",
    "metrics",
]
FRONT = ["api", "web", "cli"]

# context -> packages it must not import, directly or through others (ARCHITECTURE.md table)
RULES: dict[str, list[str]] = {
    "kernel": ["store", *PLATFORM, *FRONT, "index", "synth", "schema"],
    "store": [*PLATFORM, *FRONT, "index", "synth", "schema"],
    "registry": ["exchange", "api", "web"],
    "identity": ["exchange", "api", "web"],
    "exchange": ["api", "web"],
    "quality": ["api", "web"],
    "collaboration": ["api", "web"],
    "epidemic": ["api", "web"],
    "audit": [p for p in [*PLATFORM, *FRONT, "index", "synth"] if p != "audit"],
    "security": ["api", "web"],
    "metrics": ["api", "web"],
    # the index engine stands apart: numeric and file-format libraries only
    "index": ["kernel", "store", *PLATFORM, *FRONT, "synth", "schema"],
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("rhip")


def _exists(graph: grimp.ImportGraph, name: str) -> bool:
    return f"rhip.{name}" in graph.modules


EXISTING = sorted(c for c in RULES if importlib.util.find_spec(f"rhip.{c}") is not None)


@pytest.mark.parametrize("context", EXISTING)
def test_context_does_not_import_what_it_must_not(graph: grimp.ImportGraph, context: str) -> None:
    broken = [
        target
        for target in RULES[context]
        if _exists(graph, target)
        and graph.chain_exists(f"rhip.{context}", f"rhip.{target}", as_packages=True)
    ]
    chains = {
        t: graph.find_shortest_chain(f"rhip.{context}", f"rhip.{t}", as_packages=True)
        for t in broken
    }
    assert not broken, f"rhip.{context} imports forbidden packages: {chains}"


def test_the_checker_sees_a_real_dependency(graph: grimp.ImportGraph) -> None:
    # guards the test above against a graph that silently finds nothing
    assert graph.chain_exists("rhip.api", "rhip.store", as_packages=True)
    assert graph.chain_exists("rhip.store", "rhip.kernel", as_packages=True) is False
    assert graph.chain_exists("rhip.kernel", "rhip.api", as_packages=True) is False
