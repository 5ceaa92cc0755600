"""A recordkit served from a thread on loopback for the recorder tests of a module, and REST setup against it."""

from tests.support.recorder import server, setup

__all__ = ["server", "setup"]
