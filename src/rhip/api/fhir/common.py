"""FHIR REST plumbing shared by every resource: search parameters, paging, Bundles, errors.

Search follows FHIR R4 §3.1.1 (http://hl7.org/fhir/R4/search.html): unknown parameters are an
error (we act as if ``Prefer: handling=strict``), ``_count`` bounds the page, ``_offset`` pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse

from rhip.kernel.errors import MalformedInput, NotSupported, RhipError

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 20
MAX_COUNT = 500
CONTROL = frozenset({"_count", "_offset", "_format", "_total", "_summary", "_elements"})


class FHIRResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        # Chinese text as UTF-8, not \\u escapes: smaller and readable by integrators
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    offset: int


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One parsed search parameter: ``name:modifier=value``."""

    name: str
    modifier: str | None
    value: str


def parse_search(request: Request, allowed: Iterable[str]) -> tuple[list[SearchParam], Page]:
    """Split the query into resource parameters and paging; reject what the resource lacks."""
    allowed = set(allowed)
    params: list[SearchParam] = []
    count, offset = DEFAULT_COUNT, 0
    for key, value in request.query_params.multi_items():
        name, _, modifier = key.partition(":")
        if name == "_count":
            count = _non_negative(key, value, upper=MAX_COUNT)
        elif name == "_offset":
            offset = _non_negative(key, value)
        elif name in CONTROL:
            continue
        elif name in allowed:
            params.append(SearchParam(name, modifier or None, value))
        else:
            raise NotSupported(
                f"unknown search parameter {key!r}; supported: {', '.join(sorted(allowed))}",
                expression=key,
            )
    return params, Page(count, offset)


def _non_negative(key: str, value: str, upper: int | None = None) -> int:
    try:
        n = int(value)
    except ValueError:
        raise MalformedInput(
            f"{key} must be a whole number, got {value!r}", expression=key
        ) from None
    if n < 0:
        raise MalformedInput(f"{key} must not be negative", expression=key)
    return min(n, upper) if upper is not None else n


def split_token(value: str) -> tuple[str | None, str]:
    """A token ``system|code`` or bare ``code`` (any system)."""
    if "|" in value:
        system, code = value.split("|", 1)
        return (system or None), code
    return None, value


def searchset(
    request: Request, resources: list[dict[str, Any]], total: int, page: Page
) -> dict[str, Any]:
    """A searchset Bundle with ``self``/``first``/``previous``/``next``/``last`` links."""
    base = str(request.url.remove_query_params(["_offset", "_count"]))
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("_offset", "_count")]

    def link(relation: str, offset: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(page.count)), ("_offset", str(offset))])
        return {"relation": relation, "url": f"{base.split('?')[0]}?{query}"}

    links = [link("self", page.offset), link("first", 0)]
    if page.offset > 0:
        links.append(link("previous", max(0, page.offset - page.count)))
    if page.count and page.offset + page.count < total:
        links.append(link("next", page.offset + page.count))
    if page.count:
        links.append(link("last", max(0, (total - 1) // page.count * page.count)))
    root = str(request.base_url).rstrip("/") + "/fhir"
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{root}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


async def read_resource(request: Request, resource_type: str) -> dict[str, Any]:
    """The request body as a FHIR resource of ``resource_type``, or a specific 400."""
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedInput("body must be a JSON object (a FHIR resource)")
    if data.get("resourceType") != resource_type:
        raise MalformedInput(
            f"resourceType must be {resource_type!r}, got {data.get('resourceType')!r}",
            expression="resourceType",
        )
    return data


def outcome_response(exc: RhipError) -> FHIRResponse:
    return FHIRResponse(exc.to_operation_outcome(), status_code=exc.status)
