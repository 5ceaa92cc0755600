"""meeting events in the webhook outbox: an event need not belong to a recording

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.alter_column("recording_id", existing_type=sa.String(length=36), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.alter_column("recording_id", existing_type=sa.String(length=36), nullable=False)
