"""Secrets at rest (node TLS keys, registry passwords): Fernet from cryptography.

The key is PORTAL_ENCRYPTION_KEY (any text; it is stretched with SHA-256), by default the
portal's SECRET_KEY. Sealed values are stored as Fernet tokens and opened only when used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SealError(RuntimeError):
    pass


def _key(purpose: bytes) -> bytes:
    secret = settings.PORTAL_ENCRYPTION_KEY or settings.SECRET_KEY
    return hashlib.sha256(purpose + b"\0" + secret.encode()).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_key(b"crossport-sealing")))


def opaque_id(kind: str, value: object) -> str:
    """A stable name for a row that says nothing about it (32 hex digits, HMAC under the same
    key): what builder nodes and pushed images may see instead of a slug or a row id. It
    changes with PORTAL_ENCRYPTION_KEY."""
    message = f"{kind}\0{value}".encode()
    return hmac.new(_key(b"crossport-opaque-id"), message, hashlib.sha256).hexdigest()[:32]


def seal(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode("ascii") if text else ""


def unseal(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise SealError(
            "a stored secret cannot be decrypted: PORTAL_ENCRYPTION_KEY (or the secret key) "
            "changed since it was saved; enter the secret again"
        ) from None
