"""Node endpoints and TLS material are judged before anything connects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from certs import client_tls, issue, make_ca

from builds.dockerhost import (
    OPEN_PORT_RISK,
    cert_dir,
    parse_endpoint,
    validate_node_endpoint,
    validate_tls,
)
from portal.grammar import InvalidValue


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("ssh://builder@arm1.example.com", "ssh://builder@arm1.example.com"),
        ("ssh://builder@arm1.example.com:2222", "ssh://builder@arm1.example.com:2222"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
        ("tcp://LOCALHOST:2375/", "tcp://localhost:2375"),
        ("tcp://[::1]:2376", "tcp://[::1]:2376"),
        ("tcp://build-arm.example.com:2376", "tcp://build-arm.example.com:2376"),
    ],
)
def test_endpoints_parse_to_their_normal_form(text: str, normal: str) -> None:
    assert str(parse_endpoint(text)) == normal


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected unix://"),
        ("http://host:2375", "scheme must be"),
        ("tcp://host", "give a port"),
        ("tcp://host:0", "port must be a number"),
        ("tcp://host:99999", "port must be a number"),
        ("tcp://user:pw@host:2376", "credentials do not belong"),
        ("ssh://host", "give the ssh user"),
        ("ssh://-oProxyCommand=x@host", "ssh user name is not valid"),
        ("ssh://u@-oProxyCommand=evil", "not a host name"),
        ("tcp://host:2376/path", "no path"),
        ("tcp://host:2376?x=1", "no path"),
        ("unix://relative.sock", "absolute socket path"),
        ("unix:///run/../etc/x.sock", "absolute socket path"),
        ("tcp://ho st:2376", "without spaces"),
        ("tcp://[::1:2376", "missing ']'"),
        ("tcp://hôst:2376", "printable ASCII"),
    ],
)
def test_malformed_endpoints_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_endpoint(text)
    assert why in str(caught.value)


def test_plain_tcp_is_refused_off_loopback_with_the_risk_named() -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_node_endpoint("tcp://build-arm.example.com:2375", None)
    assert OPEN_PORT_RISK in str(caught.value)
    endpoint, material, _ = validate_node_endpoint("tcp://127.0.0.1:2375", None)
    assert endpoint.loopback and material is None


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = make_ca()
    return {"ca": ca, "client": issue(ca, "portal")}


def test_valid_material_is_accepted_and_expiry_reported(pki: dict[str, Any]) -> None:
    tls = client_tls(pki["ca"], pki["client"])
    endpoint, material, expires = validate_node_endpoint("tcp://build.example.com:2376", tls)
    assert material is not None and material.key == tls["key"]
    assert expires == pki["client"].cert.not_valid_after_utc


def test_missing_material_is_named(pki: dict[str, Any]) -> None:
    tls = client_tls(pki["ca"], pki["client"])
    del tls["key"]
    with pytest.raises(InvalidValue, match="give all of ca, cert and key"):
        validate_tls(tls)


def test_tls_on_a_unix_socket_is_refused(pki: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue, match="only to tcp://"):
        validate_node_endpoint("unix:///x.sock", client_tls(pki["ca"], pki["client"]))


def test_expired_and_future_certificates_are_refused(pki: dict[str, Any]) -> None:
    expired = issue(pki["ca"], "old", starts_in=timedelta(days=-3))
    with pytest.raises(InvalidValue, match="expired on"):
        validate_tls(client_tls(pki["ca"], expired))
    future = issue(pki["ca"], "soon", starts_in=timedelta(days=1))
    with pytest.raises(InvalidValue, match="not valid yet"):
        validate_tls(client_tls(pki["ca"], future))


def test_mismatched_key_and_foreign_ca_are_refused(pki: dict[str, Any]) -> None:
    other = issue(pki["ca"], "other")
    tls = client_tls(pki["ca"], pki["client"]) | {"key": other.key_pem}
    with pytest.raises(InvalidValue, match="does not belong to the client certificate"):
        validate_tls(tls)
    stranger = make_ca("another CA")
    with pytest.raises(InvalidValue, match="not signed by the CA"):
        validate_tls(client_tls(stranger, pki["client"]))


def test_garbage_pem_is_refused(pki: dict[str, Any]) -> None:
    tls = client_tls(pki["ca"], pki["client"])
    with pytest.raises(InvalidValue, match="not a PEM certificate"):
        validate_tls(tls | {"cert": "-----BEGIN CERTIFICATE-----\nnope\n"})
    with pytest.raises(InvalidValue, match="not an unencrypted PEM private key"):
        validate_tls(tls | {"key": "not a key"})


def test_cert_files_are_private_and_gone_afterwards(pki: dict[str, Any]) -> None:
    _, material, _ = validate_node_endpoint(
        "tcp://127.0.0.1:2376", client_tls(pki["ca"], pki["client"])
    )
    with cert_dir(material) as folder:
        assert folder is not None
        assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
        assert (folder / "key.pem").stat().st_mode & 0o077 == 0
        assert (folder / "key.pem").read_text() == material.key  # type: ignore[union-attr]
    assert not folder.exists()
