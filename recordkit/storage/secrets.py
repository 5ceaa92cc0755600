"""Storage secrets at rest: encrypted with the server's key, never stored or logged in clear."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from cryptography.fernet import Fernet


class SecretBox:
    """Encrypts and decrypts small JSON objects with a key derived from the operator's secret."""

    def __init__(self, key_material: str) -> None:
        digest = hashlib.sha256(b"recordkit-storage-secrets:" + key_material.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: dict[str, Any]) -> str | None:
        """The encrypted form of `value`, or None when there is nothing to hide."""
        if not value:
            return None
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        """The object sealed in `token` (empty when there is none)."""
        if not token:
            return {}
        return orjson.loads(self._fernet.decrypt(token.encode()))
