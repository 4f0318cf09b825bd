"""The compiled bulk check accepts exactly what ``check_structure`` accepts, and fails with its
errors (file:line and element path unchanged)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.fhir_support import json_paths, observation, patient, report
from rhip.exchange import bulk_check
from rhip.exchange.fhir_validate import check_structure
from rhip.kernel.errors import RhipError

ODD = [None, "x", "final", "<", 1, 1.5, True, [], {}, [{}], ["x"], {"coding": "x"},
       {"value": "high"}, {"reference": 3}, [{"coding": [{"code": 7}]}]]  # fmt: skip


def _samples() -> list[dict[str, Any]]:
    obs = observation(1, "Patient/p", 5.0)["resource"]
    obs |= {"interpretation": [{"coding": [{"code": "H"}]}], "specimen": {"reference": "#s"},
            "referenceRange": [{"low": {"value": 1}, "high": {"value": 9.5}}]}  # fmt: skip
    dr = report("Patient/p", ["#o1"])["resource"]
    specimen = {"resourceType": "Specimen", "id": "s", "type": {"text": "serum"}}
    dr["contained"] = [{**copy.deepcopy(obs), "id": "o1"}, specimen]
    return [obs, dr, patient()["resource"]]


def _accepts(resource: Any) -> bool:
    try:
        check_structure(resource, "R")
    except RhipError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_compiled_check_accepts_what_check_structure_accepts(data) -> None:
    resource = copy.deepcopy(data.draw(st.sampled_from(_samples())))
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(json_paths(resource)))
        parent = resource
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(ODD)))
    assert bulk_check.valid(resource) == _accepts(resource)


@pytest.mark.parametrize("sample", range(3))
def test_samples_pass_and_errors_are_check_structures(sample: int) -> None:
    resource = _samples()[sample]
    assert bulk_check.check(resource, "R") is resource
    broken = {**resource, "status": "nonsense"} if "status" in resource else {**resource, "id": 5}
    with pytest.raises(RhipError) as compiled:
        bulk_check.check(broken, "lab.ndjson:2")
    with pytest.raises(RhipError) as walked:
        check_structure(broken, "lab.ndjson:2")
    assert compiled.value.message == walked.value.message
    assert compiled.value.expression == walked.value.expression
