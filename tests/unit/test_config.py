"""Operator settings: a private data dir; credentials generated once per data dir, kept private, never written
or read through a planted link, overridden by the environment; database URLs; retention; the networks fetches
may reach."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recordkit.app import build_services
from recordkit.config import UnsafeDataDir, build_settings, load_credentials, normalise_database_url
from recordkit.meetings.media.bitstream import FrameSize


def test_credentials_are_generated_once_and_kept(tmp_path: Path) -> None:
    first, generated = load_credentials(tmp_path, {})
    again, generated_again = load_credentials(tmp_path, {})
    assert generated and not generated_again
    assert first == again
    assert first.api_token.startswith("rk_") and len(first.account_id) == 32
    stored = tmp_path / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())["api_token"] == first.api_token


def test_the_data_dir_is_created_private_and_an_open_one_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = tmp_path / "new" / "data"
    build_settings(fresh, environ={})
    assert fresh.stat().st_mode & 0o777 == 0o700

    opened = tmp_path / "opened"
    opened.mkdir()
    opened.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="recordkit.config"):
        build_settings(opened, environ={})
    assert opened.stat().st_mode & 0o777 == 0o700
    assert f"the data dir {opened} was open to other users (mode 0755); it is 0700 now" in caplog.text


@pytest.mark.parametrize("target", ["planted.json", "missing.json"])
def test_credentials_are_never_read_or_written_through_a_symlink(tmp_path: Path, target: str) -> None:
    # A link to keys someone else chose (or to where they would like ours written) is refused, not followed.
    planted = tmp_path / target
    if target == "planted.json":
        planted.write_text(json.dumps({"api_token": "rk_chosen", "signing_key": "chosen"}))
    (tmp_path / "credentials.json").symlink_to(planted)

    with pytest.raises(UnsafeDataDir, match=r"credentials\.json is a symbolic link; .* remove it"):
        load_credentials(tmp_path, {})

    assert (tmp_path / "credentials.json").is_symlink()
    assert planted.exists() == (target == "planted.json"), "nothing is created at the link's target"
    assert {path.name for path in tmp_path.iterdir()} <= {"credentials.json", "planted.json"}, "nor anything else"


def test_credentials_that_are_not_a_plain_file_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "credentials.json")  # would block a plain open() forever
    with pytest.raises(UnsafeDataDir, match=r"credentials\.json is not a regular file"):
        load_credentials(tmp_path, {})


def test_credentials_are_private_whatever_the_umask(tmp_path: Path) -> None:
    # In a child with umask 000, as if recordkit were embedded in a process that never set one.
    code = "import os, sys; from pathlib import Path; from recordkit.config import load_credentials; os.umask(0); "
    code += "load_credentials(Path(sys.argv[1]), {})"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert [path.name for path in tmp_path.iterdir()] == ["credentials.json"], "no partial file is left behind"
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_processes_starting_together_share_one_set_of_credentials(tmp_path: Path) -> None:
    # Each child waits for the same instant once its imports are done, so the creations really overlap.
    code = "import sys, time; from pathlib import Path; from recordkit.config import load_credentials; "
    code += "time.sleep(max(0, float(sys.argv[2]) - time.time())); "
    code += "print(load_credentials(Path(sys.argv[1]), {})[0].signing_key)"
    at = str(time.time() + 2)
    starters = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), at], stdout=subprocess.PIPE, text=True)
        for _ in range(12)
    ]
    keys = {starter.communicate()[0].strip() for starter in starters}
    assert all(starter.returncode == 0 for starter in starters)
    assert keys == {json.loads((tmp_path / "credentials.json").read_text())["signing_key"]}


def test_credentials_of_an_older_version_get_the_missing_keys_and_keep_theirs(tmp_path: Path) -> None:
    older = {"api_token": "rk_old", "account_id": "b" * 32, "signing_key": "s" * 64}
    (tmp_path / "credentials.json").write_text(json.dumps(older))

    credentials, generated = load_credentials(tmp_path, {})

    assert not generated
    assert (credentials.api_token, credentials.signing_key) == ("rk_old", "s" * 64)
    stored = json.loads((tmp_path / "credentials.json").read_text())
    assert stored == {**older, "participant_token_key": credentials.participant_token_key,
                      "storage_key": credentials.storage_key,
                      "webhook_private_key": credentials.webhook_private_key}  # fmt: skip
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600


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


def test_the_largest_decoded_picture_is_a_setting_that_reaches_the_recorders_readers(tmp_path: Path) -> None:
    settings, _ = build_settings(tmp_path, environ={"RECORDKIT_MEDIA_MAX_FRAME_SIZE": "1280X720"})
    assert settings.media.max_frame_size == FrameSize(1280, 720)
    assert build_services(settings).media.open_source("meeting").max_frame_size == FrameSize(1280, 720)
    assert build_settings(tmp_path, environ={})[0].media.max_frame_size == FrameSize(1920, 1080)
    for text in ("1920", "0x0", "1920x1080x3", "20000x100", "-5x10"):
        with pytest.raises(ValueError, match="RECORDKIT_MEDIA_MAX_FRAME_SIZE"):
            build_settings(tmp_path, environ={"RECORDKIT_MEDIA_MAX_FRAME_SIZE": text})


def test_the_webhook_key_is_generated_once_or_read_from_the_operators_file(tmp_path: Path) -> None:
    generated, _ = load_credentials(tmp_path / "a", {})
    again, _ = load_credentials(tmp_path / "a", {})
    assert generated.webhook_private_key == again.webhook_private_key
    key = serialization.load_pem_private_key(generated.webhook_private_key.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048

    own = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = own.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())  # fmt: skip
    (tmp_path / "own.pem").write_bytes(pem)
    credentials, _ = load_credentials(tmp_path / "b", {"RECORDKIT_WEBHOOK_KEY_FILE": str(tmp_path / "own.pem")})
    loaded = serialization.load_pem_private_key(credentials.webhook_private_key.encode(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey) and loaded.private_numbers() == own.private_numbers()

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / "weak.pem").write_bytes(
        weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "junk.pem").write_text("not a key")
    for name in ("weak.pem", "junk.pem", "missing.pem"):
        with pytest.raises(ValueError, match="RECORDKIT_WEBHOOK_KEY_FILE"):
            load_credentials(tmp_path / "c", {"RECORDKIT_WEBHOOK_KEY_FILE": str(tmp_path / name)})
