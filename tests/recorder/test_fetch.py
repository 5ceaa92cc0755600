"""Fetches of caller-given URLs reach only public addresses, or the internal networks the operator allows:
the address rule, and real servers on loopback that count what they are asked."""

from __future__ import annotations

import gzip
from ipaddress import ip_address, ip_network

import pytest

from recordkit.recorder.fetch import FetchError, FetchRefused, Network, fetch, refusal, url_for_log
from tests.recorder.origin import Origin

LIMITS = {"timeout_s": 5.0, "max_bytes": 1_000_000, "max_redirects": 3}


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "reserved"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),  # Teredo
        ("::127.0.0.1", "reserved"),  # IPv4-compatible
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged by the IPv4 address inside
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        # Public addresses.
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),  # just past 172.16.0.0/12
        ("100.128.0.1", None),  # just past 100.64.0.0/10
        ("11.0.0.1", None),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
    ],
)
def test_which_addresses_are_refused(address: str, reason: str | None) -> None:
    assert refusal(ip_address(address)) == reason


ALLOWED = (ip_network("127.0.0.2/32"), ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.2", None),
        ("127.0.0.1", "loopback"),
        ("127.0.0.3", "loopback"),
        ("::ffff:127.0.0.2", None),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.0", None),
        ("10.255.255.255", None),
        ("9.255.255.255", None),  # public anyway
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fd00::", None),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("fc00::1", "unique-local"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
    ],
)
def test_an_allow_list_lets_exactly_its_networks_through(address: str, reason: str | None) -> None:
    assert refusal(ip_address(address), ALLOWED) == reason


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        (
            "https://user:secret@cdn.example.com:8443/img/logo.png?sig=abc#frag",
            "https://cdn.example.com:8443/img/logo.png",
        ),
        ("http://example.com/logo.png?X-Amz-Signature=abc", "http://example.com/logo.png"),
        ("http://[::1]:8080/x?token=1", "http://[::1]:8080/x"),
        ("data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,…"),
        ("http://example.com:port/x?sig=abc", "(an invalid URL)"),
    ],
)
def test_urls_are_logged_without_their_secrets(url: str, logged: str) -> None:
    assert url_for_log(url) == logged


LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.0/8"),)


async def test_loopback_is_refused_before_any_request_unless_allowed() -> None:
    with Origin() as origin:
        url = origin.serve("/logo.png", b"image")
        with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 \(loopback\)"):
            await fetch(url, **LIMITS)
        with pytest.raises(FetchRefused, match="loopback"):
            await fetch(url.replace("127.0.0.1", "localhost"), **LIMITS)
        assert origin.requests == []
        assert await fetch(url + "?v=2", allowed=LOOPBACK, **LIMITS) == b"image"
        assert origin.requests == [("/logo.png?v=2", origin.url.removeprefix("http://"))]


async def test_the_name_is_sent_to_the_address_that_was_checked() -> None:
    with Origin() as origin:
        url = origin.serve("/logo.png", b"image").replace("127.0.0.1", "localhost")
        assert await fetch(url, allowed=LOOPBACK, **LIMITS) == b"image"
        port = origin.url.rsplit(":", 1)[1]
        assert origin.requests == [("/logo.png", f"localhost:{port}")]


async def test_every_redirect_hop_is_checked() -> None:
    """127.0.0.2 is allowed and redirects to 127.0.0.1, which is not: the second server is never asked."""
    with Origin("127.0.0.2") as hop, Origin("127.0.0.1") as inside:
        target = inside.serve("/logo.png", b"inside")
        first = hop.redirect("/by-address", target)
        by_name = hop.redirect("/by-name", target.replace("127.0.0.1", "localhost"))
        allowed = (ip_network("127.0.0.2/32"),)
        for url in (first, by_name):
            with pytest.raises(FetchRefused, match="loopback"):
                await fetch(url, allowed=allowed, **LIMITS)
        assert [path for path, _ in hop.requests] == ["/by-address", "/by-name"]
        assert inside.requests == []
        # The same chain, with the second hop allowed too, is followed to its end.
        assert await fetch(first, allowed=LOOPBACK, **LIMITS) == b"inside"
        assert len(inside.requests) == 1


async def test_redirects_to_other_schemes_are_refused() -> None:
    with Origin() as origin:
        url = origin.redirect("/logo.png", "file:///etc/passwd")
        with pytest.raises(FetchError, match="not an http or https URL"):
            await fetch(url, allowed=LOOPBACK, **LIMITS)


async def test_proxy_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    with Origin() as proxy, Origin() as origin:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        url = origin.serve("/logo.png", b"direct")
        assert await fetch(url, allowed=LOOPBACK, **LIMITS) == b"direct"
        assert proxy.requests == [] and len(origin.requests) == 1


async def test_a_compressed_body_is_never_inflated() -> None:
    """A server may send gzip although it was asked for identity: the bytes are kept as sent, within the limit."""
    with Origin() as origin:
        bomb = gzip.compress(bytes(5_000_000))
        url = origin.serve("/logo.png", bomb, headers={"Content-Encoding": "gzip"})
        assert await fetch(url, allowed=LOOPBACK, **LIMITS) == bomb
