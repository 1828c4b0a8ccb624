"""Signing secrets at rest.

The service signs every delivery, so it needs each secret back: a hash (as for API keys) would not do. Secrets are
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived (HKDF-SHA256) from
SNAPDEX_WEBHOOK_SECRET_KEY. When that setting is unset, a random key is made once in <data_dir>/webhook-secret.key
(mode 0600): a copy of the catalog (a PostgreSQL dump, a backup) then reveals no secret. Hosts sharing one catalog
must share the key: set SNAPDEX_WEBHOOK_SECRET_KEY on all of them. A secret is shown once, at creation, and never
logged."""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def new_secret() -> str:
    return "whsec_" + pysecrets.token_urlsafe(32)


def key_material(configured: str | None, data_dir: Path) -> bytes:
    """The configured server secret, or the data folder's own key file (made on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / "webhook-secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this data folder made it first
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.urlsafe_b64encode(os.urandom(32)))
    return path.read_bytes().strip()


class SecretBox:
    """`info` tells apart what the one server secret seals: each purpose gets a key of its own (HKDF), so a value
    sealed for one cannot be opened as another's."""

    def __init__(self, material: bytes, info: bytes = b"snapdex webhook secrets") -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(sealed)).decode()
        except InvalidToken as e:
            raise ValueError("this webhook's secret was sealed under another key: SNAPDEX_WEBHOOK_SECRET_KEY (or "
                             "<data_dir>/webhook-secret.key) changed since it was created; create the webhook again"
                             ) from e
