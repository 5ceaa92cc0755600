"""Recorders: the composite and the per-track recorder, and the media stages they are built from."""

# PyAV and the FFmpeg it bundles are relied on beyond their API here: refuse any but the pinned version
# before a module of this package runs (recordkit/compat.py).
import recordkit.compat  # noqa: F401
