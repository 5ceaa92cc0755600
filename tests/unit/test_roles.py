"""Fleet roles (issue 14): what `--role` accepts, and the refusals a user sees before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recordkit.config import bucket_folder, build_settings
from recordkit.roles import ALL, API, MEDIA, BadRoles, parse_roles, role_name
from tests.helpers import CREDENTIALS_ENV


def test_roles_are_all_or_api_and_media() -> None:
    assert parse_roles("all") == ALL
    assert parse_roles("api,media") == parse_roles(" media , api ") == frozenset({API, MEDIA})
    assert role_name(parse_roles("media,api")) == "api,media" and role_name(ALL) == "all"
    for wrong in ("", "worker", "api,all", "apis"):
        with pytest.raises(BadRoles):
            parse_roles(wrong)


def test_a_fleet_role_on_sqlite_is_refused_and_all_is_not(tmp_path: Path) -> None:
    with pytest.raises(BadRoles, match="PostgreSQL"):
        build_settings(tmp_path / "a", roles=frozenset({API}), environ=CREDENTIALS_ENV)
    settings, _ = build_settings(tmp_path / "b", environ=CREDENTIALS_ENV)
    assert settings.roles == ALL and settings.bucket_dir == tmp_path.resolve() / "b" / "bucket"


def test_the_bucket_url_names_a_shared_folder(tmp_path: Path) -> None:
    assert bucket_folder(None) is None
    assert bucket_folder("file:///srv/recordkit%20bucket") == Path("/srv/recordkit bucket")
    with pytest.raises(ValueError, match="not supported yet"):
        bucket_folder("s3://bucket/prefix")
    for wrong in ("file://host/dir", "/plain/path", "file:relative"):
        with pytest.raises(ValueError, match="file:///"):
            bucket_folder(wrong)
    settings, _ = build_settings(tmp_path / "c", environ=CREDENTIALS_ENV, bucket_url=(tmp_path / "b").as_uri())
    assert settings.bucket_dir == tmp_path / "b"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["worker"], "the worker role shares its work with other processes through PostgreSQL"),
        (["serve", "--role", "media"], "the media role shares its work"),
        (["serve", "--role", "recorder"], "--role takes all, api, media or api,media"),
        (["serve", "--bucket-url", "s3://b/p"], "s3://… is not supported yet"),
    ],
)
def test_the_command_line_says_what_is_wrong(tmp_path: Path, args: list[str], said: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "recordkit", *args, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **CREDENTIALS_ENV},
    )
    assert run.returncode != 0 and said in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
