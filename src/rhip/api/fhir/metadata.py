"""``GET /fhir/metadata``: the CapabilityStatement, built from what the routers really serve."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rhip import __version__
from rhip.api.fhir.common import FHIRResponse

router = APIRouter()

# Each FHIR router module that serves a resource registers its capability here at import time.
RESOURCES: dict[str, dict[str, Any]] = {}
OPERATIONS: list[dict[str, str]] = []
SYSTEM_INTERACTIONS: set[str] = set()  # e.g. transaction, batch (POST /fhir)


def register(
    resource: dict[str, Any] | None = None,
    operations: list[dict[str, str]] | None = None,
    system_interactions: tuple[str, ...] = (),
) -> None:
    """Declare what a router serves, so the CapabilityStatement says exactly that."""
    if resource is not None:
        RESOURCES[resource["type"]] = resource
    SYSTEM_INTERACTIONS.update(system_interactions)
    for op in operations or []:
        if op not in OPERATIONS:
            OPERATIONS.append(op)


@router.get("/fhir/metadata", response_class=FHIRResponse, tags=["fhir"])
def capability_statement(request: Request) -> FHIRResponse:
    root = str(request.base_url).rstrip("/") + "/fhir"
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": [RESOURCES[k] for k in sorted(RESOURCES)],
    }
    if OPERATIONS:
        rest["operation"] = OPERATIONS
    if SYSTEM_INTERACTIONS:
        rest["interaction"] = [{"code": c} for c in sorted(SYSTEM_INTERACTIONS)]
    return FHIRResponse(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-26",
            "kind": "instance",
            "software": {"name": "rhip", "version": __version__},
            "implementation": {
                "description": "rhip regional health information platform",
                "url": root,
            },
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [rest],
        }
    )
