"""The real docker CLI reaches registries only through the portal's egress proxy, which checks
each connection again: a name that answers differently the second time (DNS rebinding) is
refused there, and the registry is never reached."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from builds import registry
from portal import outbound
from portal.grammar.reference import parse_reference

AUTH = os.environ.get("PORTAL_TEST_AUTH_REGISTRY", "crossport-registry.test:5443")


def _answering(*addresses: str) -> Any:
    """A lookup that gives each address in turn (the last one from then on)."""
    answers = list(addresses)

    def lookup(host: str, port: int, **kwargs: Any) -> list[Any]:
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return lookup


def test_the_cli_goes_through_the_proxy_which_checks_again(
    stack: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PORTAL_OUTBOUND_ALLOW = ["127.0.0.1/32"]
    ref = parse_reference(f"{AUTH}/e2e/outbound-check")
    # Honest answers: the registry is reached (and asks for a login).
    monkeypatch.setattr(outbound, "getaddrinfo", _answering("127.0.0.1"))
    with pytest.raises(registry.RegistryError) as reached:
        registry.current_digest(ref, "none")
    assert "unauthorized" in str(reached.value)
    # The check before the CLI sees 127.0.0.1 (allowed); the proxy's own lookup then gets an
    # address outside the allow list and refuses: the CLI could only have gone through it.
    monkeypatch.setattr(outbound, "getaddrinfo", _answering("127.0.0.1", "10.255.255.1"))
    with pytest.raises(registry.RegistryError) as refused:
        registry.current_digest(ref, "none")
    assert str(refused.value).endswith(registry.UNREACHABLE)
