from __future__ import annotations

import pytest
from sqlalchemy import Engine

from exchange.support import add_institution, resolver
from rhip.exchange.ingest import V2Ingest


@pytest.fixture
def sender_id(engine: Engine) -> str:
    return add_institution(engine)


@pytest.fixture
def ingest(engine: Engine, sender_id: str) -> V2Ingest:
    return V2Ingest(engine, resolver)
