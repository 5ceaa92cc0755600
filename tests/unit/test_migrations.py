"""The Alembic migrations build exactly the tables the models describe (procrastinate's own tables aside)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from recordkit.db.migrate import upgrade
from recordkit.db.models import Base


def test_migrated_sqlite_database_matches_the_models(tmp_path: Path) -> None:
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [difference for difference in differences if "procrastinate" not in str(difference)] == []
