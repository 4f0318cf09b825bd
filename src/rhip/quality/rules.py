"""Quality rules as data (质控规则): rows of ``rules.yaml`` validated into ``Rule`` objects.

A rule names a check function of ``rhip.quality.checks.CHECKS`` and its parameters, so a new rule
is a new row (or a new small function plus a row), and an operator can change a severity without
touching code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rhip.kernel.errors import InvalidInput

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")

Dimension = Literal[
    "completeness", "validity", "consistency", "timeliness", "uniqueness", "silence"
]
Severity = Literal["error", "warning"]


class RuleError(InvalidInput):
    """A rules file that cannot be used (unknown check, bad parameters)."""


class Rule(BaseModel):
    """One quality rule: what it checks, how bad a failure is, and the ACK code if it rejects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$")
    dimension: Dimension
    severity: Severity
    check: str
    params: dict[str, Any] = Field(default_factory=dict)
    hl7_code: str = Field(default="102", pattern=r"^\d{3}$")  # HL7 table 0357
    description: str = ""
    enabled: bool = True

    @field_validator("check")
    @classmethod
    def _known(cls, name: str) -> str:
        from rhip.quality.checks import CHECKS

        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(sorted(CHECKS))}")
        return name


def load_rules(path: str | Path = DEFAULT_RULES) -> tuple[Rule, ...]:
    """Read and validate a rules file; RuleError names the failing rule."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    if not isinstance(data, list):
        raise RuleError(f"{path}: a list of rules is expected")
    rules = []
    for pos, raw in enumerate(data, start=1):
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            name = raw.get("id", f"#{pos}") if isinstance(raw, dict) else f"#{pos}"
            raise RuleError(f"{path}: rule {name}: {exc.errors()[0]['msg']}") from None
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RuleError(f"{path}: rule ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    return tuple(rules)


@functools.cache
def default_rules() -> tuple[Rule, ...]:
    """The shipped rules, read once."""
    return load_rules(DEFAULT_RULES)


def rule(rule_id: str, rules: tuple[Rule, ...] | None = None) -> Rule:
    found = next((r for r in rules or default_rules() if r.id == rule_id), None)
    if found is None:
        raise RuleError(f"no quality rule {rule_id!r}")
    return found
