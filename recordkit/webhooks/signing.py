"""Webhook signatures (meetings.md §7.3): RSA PKCS#1 v1.5 SHA-256 over the exact body bytes, base64-encoded,
and the public key receivers verify them with (`GET /.well-known/webhooks.json`)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class WebhookSigner:
    """Signs bodies with the deployment's webhook key (generated at first start, or the operator's)."""

    def __init__(self, private_key_pem: str) -> None:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._key = key
        self.public_key_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, body: bytes) -> str:
        """`rtk-signature` of `body`: standard base64, padded."""
        return base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
