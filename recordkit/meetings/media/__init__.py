"""The WebRTC media plane: rooms of peers forwarding each other's media, and the recorder's view of them."""

# aiortc, aioice and PyAV internals are reached into here: refuse any but the pinned versions before
# a module of this package runs (recordkit/compat.py).
import recordkit.compat  # noqa: F401
