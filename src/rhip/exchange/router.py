"""Inbox endpoints for operators: list messages (``?status=failed``) and re-process them.

The engine dependency is read from ``app.state`` here rather than imported from ``rhip.api``:
exchange must not import api (ARCHITECTURE.md import rules). For the same reason the guard reads
the principal the auth gate (``rhip.api.auth.install``) put on the request and asks the policy
itself: operators only (``manage``); no principal is a 401, so the router fails closed when
mounted without the gate. Error texts are listed with identifiers masked.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from rhip.exchange import service
from rhip.exchange.schemas import InboxMessagePublic, RetryRequest, RetryResultPublic
from rhip.security.guard import policy_guard
from rhip.security.logmask import mask_text
from rhip.security.policy import Action

operator = policy_guard(Action.MANAGE, "inbox")


router = APIRouter(prefix="/api/inbox", tags=["inbox"], dependencies=[Depends(operator)])


def _engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(_engine)]


@router.get("", response_model=list[InboxMessagePublic])
def list_inbox(
    engine: EngineDep,
    status: Annotated[str | None, Query(description="received|processed|failed|duplicate")] = None,
    sender: Annotated[str | None, Query(description="sender credit code")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(description="page: ids below this one")] = None,
) -> list[InboxMessagePublic]:
    """Inbox messages, newest first, without their bytes."""
    rows = service.list_inbox(
        engine, status=status, sender=sender, limit=limit, before_id=before_id
    )
    listed = [InboxMessagePublic.model_validate(r) for r in rows]
    return [m.model_copy(update={"error": mask_text(m.error)}) if m.error else m for m in listed]


@router.post("/retry", response_model=list[RetryResultPublic])
def retry(body: RetryRequest, engine: EngineDep, request: Request) -> list[RetryResultPublic]:
    """Re-process failed inbox messages by id."""
    results = service.retry(engine, body.ids, vault=request.app.state.vault)
    return [RetryResultPublic.model_validate(r, from_attributes=True) for r in results]
