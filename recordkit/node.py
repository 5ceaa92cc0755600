"""Who this process is to the others sharing its database: the id it writes on the rows it owns."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def new_node_id() -> str:
    """`host:pid:nonce`, new at every start, so a restarted process never mistakes an old claim for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_dead(node_id: str, me: str) -> bool:
    """Whether `node_id` is surely a process that no longer runs: one of this host whose pid is gone (or is
    ours, under an older nonce). Anything else may be alive, and only its lease running out tells."""
    host, _, rest = node_id.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or node_id == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process whose parent has not reaped it yet still answers signals."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
