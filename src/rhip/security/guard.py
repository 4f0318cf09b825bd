"""A FastAPI dependency for routers of contexts that may not import ``rhip.api`` (exchange,
quality): it reads the principal the login gate put on the request and asks the policy table.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from rhip.kernel.errors import Forbidden, Unauthorized
from rhip.security.policy import Action, Relationship, decide
from rhip.security.schemas import Principal


def policy_guard(action: Action, resource: str) -> Callable[[Request], Principal]:
    """A dependency answering 401 without a principal and 403 when the policy refuses."""

    def guard(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            raise Unauthorized("sign in first: this request needs an access token")
        decision = decide(principal, action, resource, None, Relationship.NONE)
        if not decision.allowed:
            raise Forbidden(decision.reason)
        return principal

    return guard
