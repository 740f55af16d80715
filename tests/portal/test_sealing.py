"""Secrets at rest: sealed with a key from settings, unreadable with another."""

from __future__ import annotations

from typing import Any

import pytest

from portal.sealing import SealError, seal, unseal


def test_sealed_text_round_trips_and_hides_the_secret(settings: Any) -> None:
    settings.PORTAL_ENCRYPTION_KEY = "key one"
    token = seal("canary-secret-1234")
    assert "canary" not in token and token != seal("canary-secret-1234"), "fresh IV each time"
    assert unseal(token) == "canary-secret-1234"
    assert seal("") == "" and unseal("") == ""


def test_another_key_cannot_open_it(settings: Any) -> None:
    settings.PORTAL_ENCRYPTION_KEY = "key one"
    token = seal("canary-secret-1234")
    settings.PORTAL_ENCRYPTION_KEY = "key two"
    with pytest.raises(SealError, match="enter the secret again"):
        unseal(token)
    settings.PORTAL_ENCRYPTION_KEY = ""  # falls back to SECRET_KEY, also a different key
    with pytest.raises(SealError):
        unseal(token)
