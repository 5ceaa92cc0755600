"""Fetches of URLs an API caller gives (the watermark, recordings.md §9.4): the caller must not be able to
reach, through recordkit, the networks recordkit sits on (loopback services, cloud metadata, the LAN).

Each hop's host is resolved once and every address it resolves to is checked by `refusal`; the request then
goes to a checked address, with the URL's own name in the Host header and in TLS (SNI and the certificate
check), so a second DNS answer cannot swap in another address. Redirects are followed here, each hop checked
the same way. Proxy variables are ignored: a proxy would resolve and connect to the name itself.

Errors never carry the URL's query string, which may hold a secret (a signed link): `url_for_log` is the
only form of a URL this module puts in a message.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Where a fetch may not go unless the operator allows it (RECORDKIT_FETCH_ALLOW). The first match names the
# reason; the more specific ranges come first.
REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "private"),  # carrier-grade NAT, RFC 6598
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # cloud metadata services live here
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # broadcast included
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/8", "reserved"),  # IPv4-compatible and local-use NAT64 among others
        ("100::/64", "reserved"),
        ("2001::/23", "reserved"),  # Teredo among others
        ("2001:db8::/32", "reserved"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved"),
        ("ff00::/8", "multicast"),
    )
)

# IPv6 ranges that carry an IPv4 address and reach it: the embedded address is judged instead.
_NAT64 = ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A fetch did not bring back a body; the message never holds the URL's query string."""


class FetchRefused(FetchError):
    """The URL, or a hop it redirects to, leads to an address fetches may not reach."""


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why a fetch may not connect to `address` ("loopback", "private", …), or None when it may: an address
    in one of the `allowed` networks always may."""
    if any(address in network for network in allowed):
        return None
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded, allowed)
    return next((reason for network, reason in REFUSED if address in network), None)


def url_for_log(url: str | httpx.URL) -> str:
    """`scheme://host[:port]/path`: no credentials, query or fragment; a data: URL keeps only its media type."""
    if isinstance(url, str) and url.startswith("data:"):
        return url.partition(",")[0][:100] + ",…"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}{parsed.path}"[:300]


async def fetch(
    url: str, *, allowed: Sequence[Network] = (), timeout_s: float, max_bytes: int, max_redirects: int
) -> bytes:
    """The body behind an http or https URL: every hop resolved and checked (`refusal`), at most
    `max_redirects` redirects, at most `max_bytes`, all of it within `timeout_s`.

    Raises FetchRefused for a hop that leads where fetches may not go, FetchError for any other failure.
    """
    try:
        target = httpx.URL(url)
        async with asyncio.timeout(timeout_s):
            for _ in range(max_redirects + 1):
                addresses = await _checked_addresses(target, allowed)
                body, location = await _get_from_any(target, addresses, timeout_s, max_bytes)
                if location is None:
                    return body
                target = target.join(location)
    except httpx.InvalidURL as error:
        raise FetchError("invalid URL") from error
    except TimeoutError as error:
        raise FetchError(f"not done within {timeout_s:g} s") from error
    # httpx's transport errors name the address and the OS error, never the URL.
    except (httpx.HTTPError, OSError) as error:
        raise FetchError(f"{type(error).__name__}: {error}") from error
    raise FetchError(f"more than {max_redirects} redirects")


async def _checked_addresses(target: httpx.URL, allowed: Sequence[Network]) -> list[Address]:
    """Every address the hop's host resolves to, in the resolver's order and each once, all of them checked.

    One refused address refuses the hop: a name that points inside is not fetched from at all, whichever
    address a connection would have used.
    """
    if target.scheme not in ("http", "https"):
        raise FetchError(f"{url_for_log(target)}: not an http or https URL")
    port = target.port or (443 if target.scheme == "https" else 80)
    answers = await asyncio.get_running_loop().getaddrinfo(
        target.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM
    )
    addresses = list(dict.fromkeys(ip_address(sockaddr[0]) for *_, sockaddr in answers))
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            raise FetchRefused(f"{url_for_log(target)} leads to {address} ({reason})")
    return addresses


async def _get_from_any(
    target: httpx.URL, addresses: list[Address], timeout_s: float, max_bytes: int
) -> tuple[bytes, str | None]:
    """`_get` from the first of the checked addresses that accepts a connection (a name with IPv4 and IPv6
    addresses may be reachable on one family only)."""
    for address in addresses[:-1]:
        try:
            return await _get(target, address, timeout_s, max_bytes)
        except httpx.ConnectError:
            continue
    return await _get(target, addresses[-1], timeout_s, max_bytes)


async def _get(target: httpx.URL, address: Address, timeout_s: float, max_bytes: int) -> tuple[bytes, str | None]:
    """One GET of `target` over a connection to `address`: the body, or the redirect's Location."""
    # A client per hop: a pooled TLS connection to the same address would carry another hop's name.
    async with (
        httpx.AsyncClient(trust_env=False, timeout=timeout_s) as client,
        client.stream(
            "GET",
            target.copy_with(host=str(address)),
            # Identity: a compressed body would be inflated in memory before its size could be checked.
            headers={"Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"},
            extensions={"sni_hostname": target.raw_host.decode("ascii")},
        ) as response,
    ):
        if response.is_redirect:
            return b"", response.headers["location"]
        if not response.is_success:
            raise FetchError(f"{url_for_log(target)} answered {response.status_code}")
        if int(response.headers.get("content-length", 0)) > max_bytes:
            raise FetchError(f"larger than {max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(f"larger than {max_bytes} bytes")
        return bytes(body), None
