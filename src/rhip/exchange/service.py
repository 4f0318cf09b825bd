"""Use cases of the inbox for operators (API, CLI): list what failed, re-process it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from rhip.exchange import inbox
from rhip.exchange.ingest import RetryResult, V2Ingest
from rhip.exchange.patients import PatientResolver
from rhip.kernel.crypto import IdentifierVault

# inbox messages newest first, without their bytes (``status='failed'``: what needs work)
list_inbox = inbox.list_messages


def retry(
    engine: Engine,
    ids: Iterable[int],
    resolver: PatientResolver | None = None,
    vault: IdentifierVault | None = None,
) -> list[RetryResult]:
    """Re-process failed (or interrupted) inbox messages by id; each in its own transaction.

    A message that succeeds now becomes processed; one that fails again keeps the new error.
    """
    return V2Ingest(engine, resolver, vault=vault).retry(ids)


def failed_ids(engine: Engine, limit: int = 1000) -> list[int]:
    """Ids of failed messages that can be retried (oldest first)."""
    rows = inbox.list_messages(engine, status="failed", limit=limit)
    return sorted(r["id"] for r in rows if not r["truncated"] and r["channel"] == "mllp")
