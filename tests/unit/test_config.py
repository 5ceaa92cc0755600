"""Operator settings: credentials generated once per data dir, kept private, overridden by the environment;
database URLs; retention; the networks fetches may reach."""

from __future__ import annotations

import json
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest

from recordkit.config import build_settings, load_credentials, normalise_database_url


def test_credentials_are_generated_once_and_kept(tmp_path: Path) -> None:
    first, generated = load_credentials(tmp_path, {})
    again, generated_again = load_credentials(tmp_path, {})
    assert generated and not generated_again
    assert first == again
    assert first.api_token.startswith("rk_") and len(first.account_id) == 32
    stored = tmp_path / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())["api_token"] == first.api_token


def test_environment_sets_token_and_account(tmp_path: Path) -> None:
    env = {"RECORDKIT_API_TOKEN": "rk_from_env", "RECORDKIT_ACCOUNT_ID": "a" * 32}
    credentials, generated = load_credentials(tmp_path, env)
    assert (credentials.api_token, credentials.account_id, generated) == ("rk_from_env", "a" * 32, False)
    assert json.loads((tmp_path / "credentials.json").read_text())["api_token"] != "rk_from_env"


def test_database_urls(tmp_path: Path) -> None:
    settings, _ = build_settings(tmp_path, environ={})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'recordkit.db'}"
    assert settings.is_sqlite
    assert normalise_database_url("postgresql://u@h:5432/d") == "postgresql+asyncpg://u@h:5432/d"
    assert normalise_database_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"


def test_retention_sets_how_long_files_and_links_last(tmp_path: Path) -> None:
    assert build_settings(tmp_path, environ={})[0].link_lifetime == timedelta(days=7)
    settings, _ = build_settings(tmp_path, environ={"RECORDKIT_RETENTION_DAYS": "30"})
    assert settings.retention_days == 30 and settings.link_lifetime == timedelta(days=30)
    for bad in ("0", "-1", "forever", "nan", "inf"):
        with pytest.raises(ValueError, match="RECORDKIT_RETENTION_DAYS"):
            build_settings(tmp_path, environ={"RECORDKIT_RETENTION_DAYS": bad})


def test_fetch_allow_is_a_list_of_networks(tmp_path: Path) -> None:
    assert build_settings(tmp_path, environ={})[0].fetch_allow == ()
    text = " 127.0.0.0/8, 10.1.2.3 ,fd00::/8,"
    settings, _ = build_settings(tmp_path, environ={"RECORDKIT_FETCH_ALLOW": text})
    assert settings.fetch_allow == (ip_network("127.0.0.0/8"), ip_network("10.1.2.3/32"), ip_network("fd00::/8"))
    for bad, why in (("10.0.0.1/8", "host bits set"), ("10.0.0.0/33", "10.0.0.0/33"), ("intranet", "intranet")):
        with pytest.raises(ValueError, match=f"RECORDKIT_FETCH_ALLOW must be comma-separated CIDRs.*{why}"):
            build_settings(tmp_path, environ={"RECORDKIT_FETCH_ALLOW": f"127.0.0.0/8,{bad}"})
