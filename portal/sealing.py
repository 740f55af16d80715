"""Secrets at rest (node TLS keys, registry passwords): Fernet from cryptography.

The key is PORTAL_ENCRYPTION_KEY (any text; it is stretched with SHA-256), by default the
portal's SECRET_KEY. Sealed values are stored as Fernet tokens and opened only when used.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SealError(RuntimeError):
    pass


def _fernet() -> Fernet:
    secret = settings.PORTAL_ENCRYPTION_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(b"crossport-sealing\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


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
