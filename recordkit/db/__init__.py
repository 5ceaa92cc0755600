"""SQLAlchemy models, the engine and Alembic migrations."""

# Migration 0003 applies the schema of the installed procrastinate: refuse any but the pinned version
# before a module of this package runs (recordkit/compat.py).
import recordkit.compat  # noqa: F401
