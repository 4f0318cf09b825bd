"""Checks on an institution before it is written: every problem is found and reported together.

>>> _district_problem("440304") is None
True
>>> _district_problem("440399")
'district 440399 is not a GB/T 2260 code'
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from rhip.kernel import regions
from rhip.kernel.errors import InvalidInput, ManyErrors, RhipError
from rhip.kernel.ids import validate_credit_code
from rhip.registry import vocabulary as v

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
LIMITS = {"name": 200, "address": 300, "phone": 32}


def check_institution(values: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise a full set of institution fields; raise all problems at once.

    Returns the values with the credit code compacted and the grade as its Chinese label.
    """
    problems: list[RhipError] = []
    out = dict(values)

    def bad(field: str, message: str) -> None:
        problems.append(InvalidInput(message, expression=field, code="value"))

    try:
        out["credit_code"] = validate_credit_code(values.get("credit_code") or "", expression="")
    except InvalidInput as exc:
        bad("credit_code", exc.message)
    if out.get("id") is not None and not FHIR_ID.match(out["id"]):
        bad("id", f"id {out['id']!r} must be 1-64 letters, digits, '-' or '.' (FHIR id)")
    if not (values.get("name") or "").strip():
        bad("name", "name is required")
    for field, limit in LIMITS.items():
        if values.get(field) and len(values[field]) > limit:
            bad(field, f"{field} is longer than {limit} characters")
    _vocab(values.get("type"), v.TYPES, "type", bad)
    _vocab(values.get("connection_status"), v.CONNECTION_STATUSES, "connection_status", bad)
    if values.get("grade"):
        label = v.grade_label(values["grade"])
        if label is None:
            bad("grade", f"grade {values['grade']!r} is unknown; known: {', '.join(v.GRADES)}")
        out["grade"] = label
    else:
        out["grade"] = None
    problem = _district_problem(values.get("district_code") or "")
    if problem:
        bad("district_code", problem)
    for field, vocab in (("feeds", v.FEEDS), ("functions", v.FUNCTIONS)):
        for i, item in enumerate(values.get(field) or []):
            _vocab(item, vocab, f"{field}[{i}]", bad)
    out["allow_cidrs"] = _cidrs(values.get("allow_cidrs") or [], bad)
    if problems:
        raise problems[0] if len(problems) == 1 else ManyErrors(problems)
    return out


def _vocab(value: Any, vocab: dict[str, str], field: str, bad: Any) -> None:
    if value not in vocab:
        bad(field, f"{field} {value!r} is unknown; known: {', '.join(vocab)}")


def _district_problem(code: str) -> str | None:
    """Why ``code`` cannot be an institution's district, or None: a current county-level code."""
    if not (len(code) == 6 and code.isdigit()):
        return f"district {code!r} must be a six-digit GB/T 2260 code"
    region = regions.lookup(code)
    if region is None:
        return f"district {code} is not a GB/T 2260 code"
    if not region.current:
        return f"district {code} ({region.name}) was abolished in {region.last_year}"
    if code.endswith("00") or region.name == "市辖区":
        return f"district {code} ({region.name}) is not a county-level district"
    return None


def _cidrs(items: list[str], bad: Any) -> list[str]:
    """Parse allow-list entries (``10.1.0.0/16``, ``::1/128``, an address); canonical form."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(str(ipaddress.ip_network(item.strip(), strict=True)))
        except ValueError as exc:
            bad(f"allow_cidrs[{i}]", f"allow_cidrs entry {item!r} is not a network: {exc}")
    return out


def split_cidrs(text: str) -> list[str]:
    """The stored comma-separated allow-list as a list."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def district_names(code: str) -> tuple[str | None, str | None, str | None]:
    """(district, city, province) names of a county-level code, for addresses and pages."""
    district = regions.lookup(code)
    city = regions.lookup(code[:4] + "00")
    return (
        district.name if district else None,
        city.name if city else None,
        regions.province_name(code[:2]),
    )
