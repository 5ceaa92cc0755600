"""Schemathesis over /openapi.json against a real server (issue 3, acceptance 3): generated valid and
invalid requests never get a 5xx, every answer matches its documented schema and status, and no
storage secret sent in a request comes back in a response or the server's log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ACCOUNT_ID, API_TOKEN, BASE
from tests.support.server import Served

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
SECRET_KEYS = ("access_key", "secret", "secret_key", "password", "private_key")


@pytest.fixture(scope="module")
def app_id(served: Served) -> str:
    response = httpx.post(f"{served.base_url}{BASE}/apps", json={"name": "fuzz"}, headers=AUTH)
    return str(response.json()["data"]["app"]["id"])


def long_secrets(body: Any) -> list[str]:
    """Secret-field values in a generated body long enough that a match cannot be a coincidence."""
    found: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key in SECRET_KEYS and isinstance(value, str) and len(value) >= 8:
                found.append(value)
            found.extend(long_secrets(value))
    elif isinstance(body, list):
        for item in body:
            found.extend(long_secrets(item))
    return found


@pytest.mark.parametrize(("mode", "examples"), [(GenerationMode.POSITIVE, 250), (GenerationMode.NEGATIVE, 150)])
def test_generated_requests_get_documented_answers(
    served: Served, app_id: str, mode: GenerationMode, examples: int
) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json").include(path_regex="^/client/v4/")
    strategy = schema.as_strategy(
        mode, path_parameters={"account_id": ACCOUNT_ID, "app_id": app_id}, headers=dict(AUTH)
    )
    sent_secrets: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=served.base_url, headers=dict(AUTH), checks=CHECKS)
        secrets = long_secrets(case.body)
        sent_secrets.extend(secrets)
        for secret in secrets:
            assert secret not in response.text and json.dumps(secret)[1:-1] not in response.text

    run()
    log = Path(served.log_path).read_text(errors="replace")
    assert not [secret for secret in sent_secrets if secret in log]
    assert "Traceback" not in log
