"""Jobs: the seam between deciding that work must happen and the worker that does it."""

# procrastinate's tables and SQL functions are used directly here: refuse any but the pinned version
# before a module of this package runs (recordkit/compat.py).
import recordkit.compat  # noqa: F401
