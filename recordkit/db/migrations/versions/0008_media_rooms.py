"""media nodes: the media address each media node registers, and which node hosts each meeting's room

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("media_address", sa.Text(), nullable=True))
    op.create_table(
        "media_rooms",
        sa.Column("meeting_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("meeting_id", name=op.f("pk_media_rooms")),
    )


def downgrade() -> None:
    op.drop_table("media_rooms")
    op.drop_column("nodes", "media_address")
