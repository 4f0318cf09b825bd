"""drop two indexes no query uses, kept up on every ingested message

``ix_inbox_messages_sender_control`` (sender, MSH-10): the inbox finds a message by sender and
control id through ``dedup_key`` (channel|sender|MSH-10, unique), never by these two columns.
``ix_reports_inbox`` (inbox_id): no query looks up reports by their inbox message, and inbox rows
are never deleted (the index would only serve the foreign key's delete checks). Each costs an
index insert per message or report on the ingest path.

Revision ID: d5e2f8a1c3b7
Revises: c4a1e0f7d2b9
Create Date: 2026-11-26 13:05:00
"""

from __future__ import annotations

from alembic import op

revision = "d5e2f8a1c3b7"
down_revision = "c4a1e0f7d2b9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_inbox_messages_sender_control", table_name="inbox_messages")
    op.drop_index("ix_reports_inbox", table_name="reports")


def downgrade() -> None:
    op.create_index("ix_reports_inbox", "reports", ["inbox_id"])
    op.create_index("ix_inbox_messages_sender_control", "inbox_messages", ["sender", "control_id"])
