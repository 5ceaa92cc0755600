"""A real RTMP server (Debian `nginx` + `libnginx-mod-rtmp`) on a free 127.0.0.1 port, for the RTMP output's
tests and benches.

No pytest imports here; fixtures wrap the context manager::

    with rtmp_server() as server:
        url = server.url("stream-key")       # rtmp://127.0.0.1:<port>/live/stream-key: publish here
        server.restart()                      # drop every publisher and come back on the same port
        server.flv_files()                    # what nginx recorded of each publish (`record all`)

nginx runs with its own prefix, config, pid file and logs in a private directory, never the machine's. Each
publish is also recorded by nginx itself (`record all; record_unique on;`) into that directory, so a test can
read back exactly what reached the server, including across reconnects.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

__all__ = ["RtmpServer", "RtmpUnavailable", "rtmp_server"]

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
READY_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5

_CONFIG = """
load_module {module};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record all;
            record_path {dir}/flv;
            record_unique on;
        }}
    }}
}}
"""


class RtmpUnavailable(RuntimeError):
    """nginx or its RTMP module is not installed, or nginx did not answer in time; the message says which."""


@dataclass
class RtmpServer:
    port: int
    base_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def url(self, stream_key: str, scheme: str = "rtmp") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/live/{stream_key}"

    def flv_files(self) -> list[Path]:
        """The FLV files nginx recorded, one per publish, oldest first."""
        return sorted((self.base_dir / "flv").glob("*.flv"), key=lambda path: path.stat().st_mtime)

    def log(self) -> str:
        path = self.base_dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        (self.base_dir / "flv").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.base_dir), "-c", str(self.base_dir / "nginx.conf"),
             "-e", str(self.base_dir / "error.log"), "-g", "daemon off; user root;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RtmpUnavailable(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RtmpUnavailable(f"nginx did not listen on {self.port} within {READY_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop nginx at once (idempotent): every publisher's connection drops."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def rtmp_server() -> Iterator[RtmpServer]:
    if shutil.which("nginx") is None or not MODULE.exists():
        raise RtmpUnavailable("nginx with the RTMP module is not installed (Debian: nginx libnginx-mod-rtmp)")
    base_dir = Path(tempfile.mkdtemp(prefix="rk-rtmp-"))
    port = free_port()
    (base_dir / "logs").mkdir()  # nginx opens its default access log under the prefix before reading the config
    (base_dir / "nginx.conf").write_text(_CONFIG.format(module=MODULE, dir=base_dir, port=port))
    server = RtmpServer(port, base_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
