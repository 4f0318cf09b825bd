"""Alembic environment: runs on the connection rhip hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]
# set only when autogenerating (scripts/make_migration.py imports every context's models)
target_metadata = config.attributes.get("target_metadata")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
