"""The packages whose internals recordkit reaches into are pinned exactly, and any other installed version stops
recordkit at import with a message naming the package and both versions."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import requires, version
from pathlib import Path

import pytest

from recordkit.compat import INTERNALS_USED, canonical_name, mismatches, pins

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.mark.parametrize(
    ("requirement", "pinned"),
    [
        ("aioice==0.13.0", {"aioice": "0.13.0"}),
        ("psycopg_binary == 3.3.9", {"psycopg-binary": "3.3.9"}),
        ("PyJWT==2.15.1", {"pyjwt": "2.15.1"}),
        ('aiortc==1.16.0; python_version >= "3.10"', {"aiortc": "1.16.0"}),
        ('pytest==9.2.0; extra == "test"', {}),
        ("aioice>=0.13", {}),
        ("aioice~=0.13.0", {}),
        ("aioice", {}),
    ],
)
def test_only_exact_runtime_pins_count(requirement: str, pinned: dict[str, str]) -> None:
    assert pins([requirement]) == pinned


def test_a_mismatch_names_the_package_and_both_versions() -> None:
    expected = {"aioice": "0.13.0", "aiortc": "1.16.0", "av": "18.1.0", "uvicorn": None}
    installed = {"aioice": "0.12.1", "aiortc": "1.16.0", "av": None, "uvicorn": "0.54.0"}
    assert mismatches(expected, installed) == [
        "aioice 0.12.1 is installed; recordkit needs aioice==0.13.0",
        "av is not installed; recordkit needs av==18.1.0",
        "uvicorn is not pinned with == in recordkit's requirements although its internals are used",
    ]


def test_every_package_whose_internals_are_used_is_pinned_in_pyproject_and_installed_so() -> None:
    declared = pins(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    for name in INTERNALS_USED:
        assert canonical_name(name) in declared, f"{name} must be pinned with == in pyproject.toml"
        # The check reads the pins from the installed metadata: a stale install would check stale pins.
        assert pins(requires("recordkit") or [])[canonical_name(name)] == declared[canonical_name(name)], (
            "pyproject.toml changed since recordkit was installed: run scripts/setup.sh"
        )
        assert version(name) == declared[canonical_name(name)]


@pytest.mark.parametrize(
    "package", ["recordkit.meetings.media", "recordkit.recorder", "recordkit.jobs", "recordkit.db", "recordkit.server"]
)
def test_another_version_installed_stops_recordkit_at_import(tmp_path: Path, package: str) -> None:
    # A real distribution record for aioice 0.12.0, found on the path before the installed 0.13.0.
    record = tmp_path / "aioice-0.12.0.dist-info"
    record.mkdir()
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: aioice\nVersion: 0.12.0\n")
    wanted = pins(requires("recordkit") or [])["aioice"]

    run = subprocess.run(
        [sys.executable, "-c", f"import {package}"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )

    assert run.returncode != 0
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith("recordkit.compat.IncompatibleDependency: "), run.stderr
    assert f"aioice 0.12.0 is installed; recordkit needs aioice=={wanted}" in last_line
