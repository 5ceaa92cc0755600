"""recording list indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:44:25.589302
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_app_id_invoked_time_id"))
        batch_op.create_index(
            batch_op.f("ix_recordings_app_id_invoked_time_id_status"),
            ["app_id", "invoked_time", "id", "status"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_recordings_app_id_status"), ["app_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_app_id_status"))
        batch_op.drop_index(batch_op.f("ix_recordings_app_id_invoked_time_id_status"))
        batch_op.create_index(
            batch_op.f("ix_recordings_app_id_invoked_time_id"), ["app_id", "invoked_time", "id"], unique=False
        )
