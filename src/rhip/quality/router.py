"""Quality endpoints: an institution's scorecard and the silent feeds.

The engine is read from ``app.state`` rather than imported from ``rhip.api``: quality must not
import api (ARCHITECTURE.md import rules). For the same reason the guard reads the principal the
auth gate put on the request and asks the policy: operators (``read-stats``); no principal is a
401, so the router fails closed when mounted without the gate.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from rhip.kernel.clock import now, today_cst
from rhip.kernel.errors import InvalidInput
from rhip.quality.schemas import FeedPublic, Scorecard
from rhip.quality.scorecard import feed_public, scorecard
from rhip.quality.silence import silent_feeds
from rhip.security.guard import policy_guard
from rhip.security.policy import Action

stats_reader = policy_guard(Action.READ_STATS, "scorecard")


router = APIRouter(prefix="/api/quality", tags=["quality"], dependencies=[Depends(stats_reader)])


def _engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(_engine)]


@router.get("/institutions/{institution_id}", response_model=Scorecard)
def institution_scorecard(
    institution_id: str,
    engine: EngineDep,
    start: Annotated[dt.date | None, Query(alias="from", description="first CST day")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="last CST day")] = None,
) -> Scorecard:
    """Checked, passed, warnings and errors by rule and day, with pass rates and feed silence."""
    end = end or today_cst()
    start = start or end - dt.timedelta(days=29)
    if start > end:
        raise InvalidInput("'from' is after 'to'", expression="from")
    if (end - start).days > 366:
        raise InvalidInput("at most 367 days per scorecard", expression="from")
    return scorecard(engine, institution_id, start, end, now())


@router.get("/silence", response_model=list[FeedPublic])
def silence(engine: EngineDep) -> list[FeedPublic]:
    """Institutions whose feed is quiet for longer than k × their usual gap (数据断流)."""
    return [feed_public(f) for f in silent_feeds(engine, now())]
