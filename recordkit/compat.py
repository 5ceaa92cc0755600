"""The packages whose internals recordkit reaches into, and the one check that they are the versions it was
written against — run once, when this module is first imported.

Reaching past a package's public API (a private attribute, a replaced method, its database tables) only holds
for the release it was read in; another release can break a recording in ways no error announces (a receiver
that stops forwarding, candidates on every interface). So each package below is pinned exactly in
pyproject.toml, and the parts of recordkit that rely on them import this module from their package
`__init__`, which refuses to go on with any other version installed.

The expected versions are read from recordkit's own installed metadata — the `==` pins of pyproject.toml — so
they are written in one place only, and reinstalling after a pin changes (scripts/setup.sh does) moves the
check with it. recordkit is always run installed (`pip install -e .` in a checkout), so the metadata is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, requires, version
from types import MappingProxyType

# Each package, and what of it recordkit relies on beyond its public API.
INTERNALS_USED: Mapping[str, str] = MappingProxyType(
    {
        "aiortc": "RTCRtpReceiver's private decoder queue, jitter buffer, timestamp mapper and RTCP handler, "
        "RTCRtpSender._send_keyframe and RTCIceGatherer._connection (meetings/media)",
        "aioice": "Connection.get_component_candidates replaced and Connection._protocols filled, StunProtocol "
        "(meetings/media/ice.py)",
        "av": "the FFmpeg it bundles: fragmented-MP4 and WebM muxer options, encoder options and codec names "
        "(recorder)",
        "procrastinate": "its tables and SQL functions queried directly, and its schema applied by migration 0003 "
        "(jobs, db)",
        "uvicorn": "Server.handle_exit overridden to note when SIGTERM arrived (server.py)",
    }
)

# `name==version` of one requirement, without extras' markers (`; extra == "test"` pins are not runtime ones).
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>[^\s;,]+)\s*")


class IncompatibleDependency(ImportError):
    """An installed package is not the exact version recordkit reaches into; the message names both."""


def canonical_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): `Foo_Bar` and `foo-bar` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: Iterable[str]) -> dict[str, str]:
    """The exact `==` pins among requirement strings, by canonical name; ranges and extras' pins are left out."""
    found = {}
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        pin = _PIN.fullmatch(spec.strip())
        if pin and "extra" not in marker:
            found[canonical_name(pin["name"])] = pin["version"]
    return found


def mismatches(expected: Mapping[str, str | None], installed: Mapping[str, str | None]) -> list[str]:
    """One sentence per package whose installed version (None: not installed) is not the expected pin
    (None: recordkit does not pin it)."""
    problems = []
    for name, wanted in expected.items():
        have = installed.get(name)
        if wanted is None:
            problems.append(f"{name} is not pinned with == in recordkit's requirements although its internals are used")
        elif have is None:
            problems.append(f"{name} is not installed; recordkit needs {name}=={wanted}")
        elif have != wanted:
            problems.append(f"{name} {have} is installed; recordkit needs {name}=={wanted}")
    return problems


def check() -> None:
    """Raise IncompatibleDependency unless every package of INTERNALS_USED is installed at its pinned version."""
    try:
        pinned = pins(requires("recordkit") or [])
    except PackageNotFoundError as error:
        raise IncompatibleDependency(
            "recordkit is not installed, so the versions it needs are unknown: run `pip install -e .` (or "
            "scripts/setup.sh) in the checkout"
        ) from error
    expected = {name: pinned.get(canonical_name(name)) for name in INTERNALS_USED}
    problems = mismatches(expected, {name: _installed(name) for name in INTERNALS_USED})
    if problems:
        raise IncompatibleDependency(
            "recordkit relies on internals of exact package versions, and "
            + "; ".join(problems)
            + ". Run scripts/setup.sh (or `pip install -e .`) to install the pinned versions."
        )


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


check()
