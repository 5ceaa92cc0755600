"""ICE candidates and liveness for one `RTCPeerConnection`.

aiortc gathers a host candidate on every interface address except 127.0.0.1, on a port the OS picks.
A media server must instead listen where it is told (loopback in tests, one public address in a
deployment) within a UDP port range a firewall lets through. `apply_ice_policy` replaces the candidate
gathering of the connection's aioice `Connection` (aioice 0.13, reached through
`RTCIceGatherer._connection`) with one that binds `bind_host` inside the port range and writes
`advertised_host` into the candidate.

`Liveness` notes when anything last arrived from the remote side (STUN checks, DTLS, SRTP), which is
how a peer whose process died is noticed long before aioice's own 30 s consent expiry.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, get_host_addresses
from aiortc import RTCPeerConnection

RECEIVE_BUFFER_BYTES = 1 << 20


class NoMediaPort(Exception):
    """Every port of the configured range is taken."""


@dataclass(frozen=True)
class IcePolicy:
    """Where media sockets bind and what address the candidates advertise."""

    # One address to bind; None gathers on every interface address like aiortc does.
    bind_host: str | None = "127.0.0.1"
    # The address written into candidates; None advertises the bound address.
    advertised_host: str | None = None
    # Inclusive UDP port range; (0, 0) lets the OS pick.
    port_min: int = 0
    port_max: int = 0


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The distinct aioice connections under the peer connection's transceivers."""
    found: dict[int, Connection] = {}
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        found[id(connection)] = connection
    return list(found.values())


def apply_ice_policy(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Gather this connection's candidates by `policy`. Call after adding transceivers and before the
    local description is set (which gathers)."""
    for connection in ice_connections(pc):
        connection.get_component_candidates = _gatherer(connection, policy)  # type: ignore[method-assign]


def _gatherer(connection: Connection, policy: IcePolicy) -> Callable[..., Awaitable[list[Candidate]]]:
    # Same signature as `Connection.get_component_candidates(component, addresses, timeout)`; the
    # addresses aioice found are replaced by the policy's.
    async def gather(component: int, *_: Any, **__: Any) -> list[Candidate]:
        return await _host_candidates(connection, policy, component)

    return gather


async def _host_candidates(connection: Connection, policy: IcePolicy, component: int) -> list[Candidate]:
    loop = asyncio.get_running_loop()
    if policy.bind_host:
        addresses = [policy.bind_host]
    else:
        addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    candidates = []
    for address in addresses:
        protocol: Any = None
        for port in _ports(policy):
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: StunProtocol(connection), local_addr=(address, port)
                )
                # asyncio reads one datagram per socket per loop turn: a busy loop needs a deep socket
                # buffer to ride out a burst (a keyframe to many subscribers) without the kernel dropping.
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
                break
            except OSError:
                continue
        if protocol is None:
            raise NoMediaPort(f"no free UDP port on {address} in {policy.port_min}-{policy.port_max}")
        bound_host, bound_port = protocol.transport.get_extra_info("sockname")[:2]
        host = policy.advertised_host or bound_host
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=bound_port,
            type="host",
        )
        connection._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


def _ports(policy: IcePolicy) -> list[int]:
    if not policy.port_min:
        return [0]
    ports = list(range(policy.port_min, policy.port_max + 1))
    # A random order spreads concurrent peers over the range instead of racing for its first port.
    random.shuffle(ports)
    return ports


class Liveness:
    """When the remote side of a peer connection was last heard from (monotonic seconds)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.last_heard_s = time.monotonic()
        for connection in ice_connections(pc):
            self._watch(connection)

    def silent_for_s(self) -> float:
        """Seconds since anything arrived."""
        return time.monotonic() - self.last_heard_s

    def _watch(self, connection: Connection) -> None:
        # Every datagram ends up in one of these two: data (DTLS/SRTP) or a STUN request (the remote
        # side's connectivity and consent checks, sent every few seconds even when no media flows).
        data_received = connection.data_received
        request_received = connection.request_received

        def on_data(*args: Any, **kwargs: Any) -> None:
            self.last_heard_s = time.monotonic()
            data_received(*args, **kwargs)

        def on_request(*args: Any, **kwargs: Any) -> None:
            self.last_heard_s = time.monotonic()
            request_received(*args, **kwargs)

        connection.data_received = on_data  # type: ignore[method-assign]
        connection.request_received = on_request  # type: ignore[method-assign]


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return socket.inet_pton(socket.AF_INET, host)[0] == 127
    except OSError:
        return host == "::1"
