"""Storage: engine factory, the shared MetaData, migrations and bulk writes."""

from rhip.store.base import UTCDateTime, metadata
from rhip.store.bulk import bulk_insert
from rhip.store.engine import is_postgres, make_engine
from rhip.store.migrate import upgrade

__all__ = ["UTCDateTime", "bulk_insert", "is_postgres", "make_engine", "metadata", "upgrade"]
