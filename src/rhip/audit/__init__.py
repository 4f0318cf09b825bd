"""Audit (访问审计): the append-only, hash-chained access log and view statistics.

Imports only ``kernel`` and ``store``: callers pass everything else in.
"""

from rhip.audit.chain import append, chain_key, record, verify
from rhip.audit.repo import search, view_stats, views_of_patient
from rhip.audit.schemas import (
    MINOR_FAILURE,
    SERIOUS_FAILURE,
    SUCCESS,
    AuditEventIn,
    AuditFilter,
    AuditRecord,
    VerifyResult,
    ViewStat,
)

__all__ = [
    "MINOR_FAILURE",
    "SERIOUS_FAILURE",
    "SUCCESS",
    "AuditEventIn",
    "AuditFilter",
    "AuditRecord",
    "VerifyResult",
    "ViewStat",
    "append",
    "chain_key",
    "record",
    "search",
    "verify",
    "view_stats",
    "views_of_patient",
]
