"""Exchange (数据交换): the durable inbox, HL7 v2 over MLLP, and the report store.

The MLLP listener is ``rhip.exchange.mllp.serve_mllp`` (not imported here, so that
``python -m rhip.exchange.mllp`` runs it without importing it twice)."""

from rhip.exchange.errors import V2Error
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.patients import PatientRegistration, PatientResolver
from rhip.exchange.service import list_inbox, retry

__all__ = [
    "PatientRegistration",
    "PatientResolver",
    "V2Error",
    "V2Ingest",
    "list_inbox",
    "retry",
]
