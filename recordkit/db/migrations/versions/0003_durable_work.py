"""durable work: job tables, recorder ownership and wanted state

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("owner_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("wanted_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("wanted_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("wanted_reason", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("applied_state", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_recordings_status_lease_expires_at"), ["status", "lease_expires_at"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("taken_by", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_status_run_after_id"), ["status", "run_after", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_recording_id_kind"), ["recording_id", "kind"], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # procrastinate's own schema (its tables, types, triggers and functions), as the pinned release ships it.
        # Its plpgsql bodies hold semicolons, so it goes through the driver's simple-query protocol whole.
        driver = bind.connection.driver_connection
        await_only(driver.execute(SchemaManager.get_schema()))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
            "procrastinate_workers CASCADE"
        )
        op.execute(
            "DO $$ DECLARE f regprocedure; BEGIN "
            "FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname LIKE 'procrastinate%' "
            "LOOP EXECUTE 'DROP FUNCTION ' || f || ' CASCADE'; END LOOP; END $$"
        )
        op.execute(
            "DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, "
            "procrastinate_job_status CASCADE"
        )
    op.drop_table("jobs")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_status_lease_expires_at"))
        for column in (
            "applied_state",
            "wanted_reason",
            "wanted_at",
            "wanted_state",
            "lease_expires_at",
            "owner_id",
            "error_reason",
        ):
            batch_op.drop_column(column)
