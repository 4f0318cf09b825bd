"""Registry use cases: register and change institutions (机构注册), find them, coverage (接入覆盖).

Every write validates all fields first and reports every problem together; nothing is written
when any check fails.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, Row

from rhip.kernel import clock
from rhip.kernel.errors import Conflict, InvalidInput, NotFound
from rhip.registry import repo
from rhip.registry import vocabulary as v
from rhip.registry.schemas import (
    Coverage,
    CoverageRow,
    Institution,
    InstitutionCreate,
    InstitutionFilter,
    InstitutionUpdate,
)
from rhip.registry.validation import check_institution, district_names, split_cidrs


class UnknownInstitution(NotFound):
    """No institution has this id."""


def register(engine: Engine, data: InstitutionCreate) -> Institution:
    """Register a new institution; 409 if its credit code or id is taken."""
    values = check_institution(data.model_dump())
    values["id"] = values.get("id") or values["credit_code"]
    now = clock.now()
    with engine.begin() as conn:
        _check_references(conn, values, own_id=None)
        repo.insert_row(conn, _to_row(values) | {"created_at": now, "updated_at": now})
        return _public(repo.get(conn, values["id"]))


def update(engine: Engine, institution_id: str, change: InstitutionUpdate) -> Institution:
    """Change the given fields of an institution, validating the result as a whole."""
    with engine.begin() as conn:
        current = get_in(conn, institution_id)
        values = current.model_dump() | change.model_dump(exclude_unset=True)
        values = check_institution(values)
        _check_references(conn, values, own_id=institution_id)
        row = _to_row(values) | {"updated_at": clock.now()}
        row.pop("id")
        repo.update_row(conn, institution_id, row)
        return _public(repo.get(conn, institution_id))


def get(engine: Engine, institution_id: str) -> Institution:
    with engine.connect() as conn:
        return get_in(conn, institution_id)


def get_in(conn: Connection, institution_id: str) -> Institution:
    row = repo.get(conn, institution_id)
    if row is None:
        raise UnknownInstitution(
            f"no institution with id {institution_id!r}", expression="id", code="not-found"
        )
    return _public(row)


def search(
    engine: Engine, flt: InstitutionFilter, limit: int = 20, offset: int = 0
) -> tuple[int, list[Institution]]:
    """Total matches and one page of institutions (ordered by name, then id)."""
    with engine.connect() as conn:
        total, rows = repo.search(conn, flt, limit, offset)
    return total, [_public(r) for r in rows]


def coverage(engine: Engine) -> Coverage:
    """Connected vs total active institutions, by type and by district, and feeds in use."""
    with engine.connect() as conn:
        counts = repo.coverage_counts(conn)
        names = repo.district_table(conn)
        feeds = repo.connected_feeds(conn)
    by_type: dict[str, list[int]] = {k: [0, 0, 0] for k in v.TYPES}
    by_district: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for code in names:
        by_district[code]
    for kind, district, status, n in counts:
        for bucket in (by_type.setdefault(kind, [0, 0, 0]), by_district[district]):
            bucket[0] += n
            bucket[1] += n if status == "connected" else 0
            bucket[2] += n if status == "testing" else 0
    feed_counts = dict.fromkeys(v.FEEDS, 0)
    for text in feeds:
        for feed in _flags(text):
            feed_counts[feed] = feed_counts.get(feed, 0) + 1
    total, connected, testing = (sum(b[i] for b in by_type.values()) for i in range(3))
    return Coverage(
        total=total,
        connected=connected,
        testing=testing,
        by_type=[CoverageRow(k, v.TYPES.get(k, k), *b) for k, b in by_type.items()],
        by_district=[
            CoverageRow(k, names.get(k) or district_names(k)[0] or k, *b)
            for k, b in sorted(by_district.items())
        ],
        by_feed=feed_counts,
    )


def _check_references(conn: Connection, values: dict[str, Any], own_id: str | None) -> None:
    """Uniqueness of id and credit code, the parent's existence; add the district if new."""
    holder = repo.id_of_credit_code(conn, values["credit_code"])
    if holder is not None and holder != own_id:
        raise Conflict(
            f"credit code {values['credit_code']} is already registered as institution {holder}",
            expression="credit_code",
            code="duplicate",
        )
    if own_id is None and repo.exists(conn, values["id"]):
        raise Conflict(f"id {values['id']!r} is taken", expression="id", code="duplicate")
    parent = values.get("part_of")
    if parent is not None and (parent == (own_id or values["id"]) or not repo.exists(conn, parent)):
        raise InvalidInput(
            f"part_of {parent!r} is not another registered institution",
            expression="part_of",
            code="value",
        )
    district, _, _ = district_names(values["district_code"])
    repo.ensure_district(
        conn,
        values["district_code"],
        district or values["district_code"],
        values["district_code"][:4] + "00",
    )


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "id", "credit_code", "name", "type", "grade", "district_code", "address", "phone",
        "active", "connection_status", "connected_on", "part_of",
    )  # fmt: skip
    row = {k: values.get(k) for k in keep}
    row["feeds"] = _dump_flags(values.get("feeds") or [])
    row["functions"] = _dump_flags(values.get("functions") or [])
    row["allow_cidrs"] = ",".join(values.get("allow_cidrs") or [])
    return row


def _dump_flags(items: list[str]) -> str:
    """Stored shape of feeds/functions: ``{"lab": true, ...}`` with sorted keys."""
    return json.dumps(dict.fromkeys(sorted(set(items)), True), separators=(",", ":"))


def _flags(text: str | None) -> list[str]:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError:
        return []
    return [k for k, on in data.items() if on] if isinstance(data, dict) else []


def _public(row: Row | None) -> Institution:
    assert row is not None
    m = row._mapping
    return Institution(
        **{k: m[k] for k in Institution.model_fields if k in m and k not in _DERIVED},
        feeds=_flags(m["feeds"]),
        functions=_flags(m["functions"]),
        allow_cidrs=split_cidrs(m["allow_cidrs"]),
    )


_DERIVED = frozenset({"feeds", "functions", "allow_cidrs"})
