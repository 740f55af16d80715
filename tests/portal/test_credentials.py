"""Registry logins: team admins only, never echoed, sealed at rest, used through a temporary
DOCKER_CONFIG that is gone after the build, and handed to `docker login` on stdin only."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from builds import credentials
from builds.models import Build, LogLine, ManifestRecord, RegistryCredential
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend
from portal.grammar import InvalidValue

CANARY = "canary-Pa55-7f3e9c1d"


def test_only_team_admins_manage_logins(api: Any, alice: Any, bob: Any, charlie: Any) -> None:
    body = {"team": "alpha", "registry": "localhost:5000", "username": "ci", "password": CANARY}
    assert api(bob).post("/api/v1/credentials", body).status_code == 403
    assert api(charlie).post("/api/v1/credentials", body).status_code == 404
    assert not RegistryCredential.objects.exists()
    response = api(alice).post("/api/v1/credentials", body)
    assert response.status_code == 201
    assert CANARY not in response.content.decode()
    assert response.json()["registry"] == "localhost:5000"
    listed = api(alice).get("/api/v1/credentials?team=alpha")
    assert [c["username"] for c in listed.json()["credentials"]] == ["ci"]
    assert CANARY not in listed.content.decode()
    assert api(bob).get("/api/v1/credentials?team=alpha").status_code == 403
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_sealed FROM builds_registrycredential")
        (sealed,) = cursor.fetchone()
    assert CANARY not in sealed and RegistryCredential.objects.get().password == CANARY
    # Saving again replaces the login for that registry.
    api(alice).post("/api/v1/credentials", body | {"username": "ci2"})
    assert list(RegistryCredential.objects.values_list("username", flat=True)) == ["ci2"]


@pytest.mark.parametrize(
    ("registry", "username", "password", "why"),
    [
        ("https://r.example.com", "u", CANARY, "without scheme"),
        ("r.example.com/path", "u", CANARY, "without scheme or path"),
        ("r.exa mple.com", "u", CANARY, "not a host"),
        ("r.example.com", f"ci:{CANARY}", CANARY, "no ':'"),  # a pasted user:token
        ("r.example.com", "u", "", "give a password"),
        ("r.example.com", "u", CANARY + "\nbreak", "no line breaks"),
    ],
)
def test_bad_logins_are_refused(
    api: Any, alice: Any, registry: str, username: str, password: str, why: str
) -> None:
    body = {"team": "alpha", "registry": registry, "username": username, "password": password}
    response = api(alice).post("/api/v1/credentials", body)
    assert response.status_code == 400 and why in response.json()["error"]
    assert CANARY not in response.content.decode()
    assert not RegistryCredential.objects.exists()


def test_build_uses_a_private_docker_config_that_is_gone_afterwards(
    project: Any, alice: Any
) -> None:
    credentials.save_login(project.team, "localhost:5000", "ci", CANARY, alice)
    seen: dict[str, Any] = {}

    class Peek(FakeBackend):
        def build(self, specs: Any, *args: Any) -> list[int]:
            folder = Path(specs[0].docker_config)
            config = json.loads((folder / "config.json").read_text())
            seen["folder"] = folder
            seen["auth"] = base64.b64decode(config["auths"]["localhost:5000"]["auth"]).decode()
            seen["mode"] = stat.S_IMODE((folder / "config.json").stat().st_mode)
            seen["argv"] = " ".join(specs[0].argv())
            seen["env"] = specs[0].env()
            return super().build(specs, *args)

    build = queue_build(project, alice)
    work_once("w1", Peek())
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert seen["auth"] == f"ci:{CANARY}" and seen["mode"] == 0o600
    assert not seen["folder"].exists(), "deleted with the workspace"
    assert CANARY not in seen["argv"] and CANARY not in json.dumps(seen["env"])
    assert not LogLine.objects.filter(text__contains=CANARY).exists()
    assert LogLine.objects.filter(text__contains="login for localhost:5000 (user ci)").exists()
    assert CANARY not in json.dumps([r.to_api() for r in ManifestRecord.objects.all()])


def test_a_refused_login_is_named_in_the_reason(project: Any, alice: Any) -> None:
    credentials.save_login(project.team, "localhost:5000", "ci", "wrong", alice)

    class Refused(FakeBackend):
        def build(self, specs: Any, on_output: Any, *args: Any) -> list[int]:
            on_output(
                0,
                b"ERROR: failed to solve: failed to push localhost:5000/alpha/hello:latest: "
                b"failed to authorize: failed to fetch oauth token: 401 Unauthorized\n",
            )
            return [1]

    build = queue_build(project, alice)
    work_once("w1", Refused())
    build.refresh_from_db()
    assert build.state == Build.State.FAILED
    assert build.reason.startswith("the registry localhost:5000 refused the push with the team's")


def test_connection_test_reads_the_login_from_a_private_config_only(
    project: Any, alice: Any, settings: Any, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    script = tmp_path / "docker"
    script.write_text(
        f'#!/bin/sh\necho "$@" > {record}.argv\nenv > {record}.env\n'
        f'cp "$DOCKER_CONFIG/config.json" {record}.config\n'
        f"cat {tmp_path}/answer >&2\nexit 1\n"
    )
    script.chmod(0o755)
    settings.PORTAL_DOCKER_CLI = str(script)
    (tmp_path / "answer").write_text(
        "ERROR: unexpected status from HEAD request to https://r/v2/x: 401 Unauthorized\n"
    )
    login = credentials.save_login(project.team, "localhost:5000", "ci", CANARY, alice)
    ok, message = credentials.test_connection(login)
    # One plain sentence, not the CLI's transport text (which names hosts and ports).
    assert not ok and message == "localhost:5000 refused the user name or password."
    assert CANARY not in message and "https://r" not in message
    assert CANARY not in Path(f"{record}.argv").read_text()
    assert CANARY not in Path(f"{record}.env").read_text()
    auth = json.loads(Path(f"{record}.config").read_text())["auths"]["localhost:5000"]["auth"]
    assert base64.b64decode(auth).decode() == f"ci:{CANARY}"
    # The team's project on that registry is the repository asked about.
    assert "localhost:5000/alpha/hello:crossport-login-check" in Path(f"{record}.argv").read_text()
    login.refresh_from_db()
    assert login.last_test_ok is False and login.last_tested_at is not None
    (tmp_path / "answer").write_text("ERROR: localhost:5000/alpha/hello:x: not found\n")
    assert credentials.test_connection(login) == (True, "Logged in to localhost:5000 as ci.")
    for answer, sentence in (
        ("ERROR: dial tcp 127.0.0.1:5000: connect: connection refused", "Could not reach"),
        ("ERROR: tls: failed to verify certificate: x509: unknown authority", "not trusted"),
        ("ERROR: something else entirely", "Could not reach"),
    ):
        (tmp_path / "answer").write_text(answer + "\n")
        ok, message = credentials.test_connection(login)
        assert not ok and sentence in message and "ERROR" not in message, message


def test_registry_grammar() -> None:
    assert credentials.validate_registry("Registry.Example.com:5443") == "registry.example.com:5443"
    with pytest.raises(InvalidValue):
        credentials.validate_registry("")


@pytest.mark.parametrize(
    ("typed", "image", "key"),
    [
        ("index.docker.io", "alice/app", credentials.DOCKER_HUB_KEY),
        ("Registry-1.Docker.io", "docker.io/alice/app", credentials.DOCKER_HUB_KEY),
        ("registry.example.com", "Registry.Example.com/alice/app", "registry.example.com"),
    ],
)
def test_a_login_is_found_whichever_name_of_its_registry_was_typed(
    alpha: Any, alice: Any, tmp_path: Path, typed: str, image: str, key: str
) -> None:
    credentials.save_login(alpha, typed, "ci", CANARY, alice)
    login = credentials.for_image(alpha.pk, image)
    assert login is not None
    config = json.loads((credentials.write_config(tmp_path, [login]) / "config.json").read_text())
    assert base64.b64decode(config["auths"][key]["auth"]).decode() == f"ci:{CANARY}"


def test_the_operators_config_is_kept_and_the_teams_login_wins(
    project: Any, alice: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    operator = tmp_path / "operator"
    operator.mkdir()
    mirror = {"auth": base64.b64encode(b"mirror:secret").decode()}
    (operator / "config.json").write_text(
        json.dumps(
            {
                "auths": {"mirror.example.com": mirror, "localhost:5000": {"auth": "b2xkOm9sZA=="}},
                "credHelpers": {"localhost:5000": "pass", "ecr.example.com": "ecr-login"},
                "credsStore": "desktop",
                "proxies": {"default": {"httpProxy": "http://127.0.0.1:3128"}},
                "currentContext": "remote",
            }
        )
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(operator))
    login = credentials.save_login(project.team, "localhost:5000", "ci", CANARY, alice)
    written = json.loads(
        (credentials.write_config(tmp_path / "team", [login]) / "config.json").read_text()
    )
    assert written["auths"]["mirror.example.com"] == mirror
    assert base64.b64decode(written["auths"]["localhost:5000"]["auth"]) == f"ci:{CANARY}".encode()
    # A helper or the store would be asked before `auths`: an empty helper sends the CLI to
    # `auths` for the team's registry only (checked against the real CLI: see README).
    assert written["credHelpers"] == {"ecr.example.com": "ecr-login", "localhost:5000": ""}
    assert written["credsStore"] == "desktop"
    assert written["proxies"] == {"default": {"httpProxy": "http://127.0.0.1:3128"}}
    # The operator's context store is not in the folder: its current context would not resolve.
    assert "currentContext" not in written
    # Without team logins nothing is taken away.
    plain = json.loads(
        (credentials.write_config(tmp_path / "plain", []) / "config.json").read_text()
    )
    assert plain["credsStore"] == "desktop" and "localhost:5000" in plain["credHelpers"]


def test_a_login_the_key_cannot_open_is_reported_not_crashed_on(
    api: Any, alice: Any, project: Any, settings: Any
) -> None:
    from django.test import Client

    login = credentials.save_login(project.team, "localhost:5000", "ci", CANARY, alice)
    settings.PORTAL_ENCRYPTION_KEY = "a key other than the one that sealed it"
    body = {
        "team": "alpha",
        "target": f"{project.image}:v1",
        "sources": [f"{project.image}:amd64"],
        "dry_run": True,
    }
    response = api(alice).post("/api/v1/merges", body)
    assert response.status_code == 409 and "enter the secret again" in response.json()["error"]
    tested = api(alice).post(f"/api/v1/credentials/{login.pk}/test")
    assert tested.status_code == 200 and tested.json()["last_test_ok"] is False
    assert "enter the secret again" in tested.json()["last_test_message"]
    client = Client()
    client.force_login(alice)
    page = client.post(
        "/teams/alpha/merge/",
        {"target": body["target"], "sources": body["sources"][0], "action": "preview"},
    )
    assert page.status_code == 200 and "enter the secret again" in page.content.decode()


def test_merge_dry_run_must_be_a_boolean(api: Any, alice: Any, project: Any) -> None:
    body = {"team": "alpha", "target": f"{project.image}:v1", "sources": [f"{project.image}:a"]}
    response = api(alice).post("/api/v1/merges", body | {"dry_run": "false"})
    assert (
        response.status_code == 400 and "dry_run must be true or false" in response.json()["error"]
    )
    assert not ManifestRecord.objects.exists()


def test_team_page_manages_logins_without_showing_the_password(
    alice: Any, bob: Any, project: Any
) -> None:
    from django.test import Client

    client = Client()
    client.force_login(alice)
    client.post(
        "/teams/alpha/credentials",
        {"action": "save", "registry": "localhost:5000", "username": "ci", "password": CANARY},
    )
    page = client.get("/teams/alpha/").content.decode()
    assert 'data-registry="localhost:5000"' in page and CANARY not in page
    other = Client()
    other.force_login(bob)
    assert "registry-logins" not in other.get("/teams/alpha/").content.decode()
    response = other.post("/teams/alpha/credentials", {"action": "save", "registry": "x.io"})
    assert response.status_code == 403
    login = RegistryCredential.objects.get()
    for junk in ("abc", "", "1.5"):
        answer = client.post("/teams/alpha/credentials", {"action": "delete", "credential": junk})
        assert answer.status_code == 404
    client.post("/teams/alpha/credentials", {"action": "delete", "credential": login.pk})
    assert not RegistryCredential.objects.exists()


def test_older_logins_and_images_are_rewritten_to_canonical_hosts(
    alpha: Any, alice: Any, project: Any
) -> None:
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from portal.models import Project

    now = timezone.now()
    for host, user, age in (
        ("Index.Docker.io", "old", 2),
        ("docker.io", "new", 1),
        ("Registry.Example.com", "ci", 1),
    ):
        login = RegistryCredential(team=alpha, registry=host, username=user)
        login.set_password(CANARY)
        login.updated_at = now - timedelta(days=age)
        login.save()
    Project.objects.filter(pk=project.pk).update(image="LOCALHOST:5000/alpha/hello")

    importlib.import_module("builds.migrations.0008_canonical_login_hosts").canonical_hosts(
        apps, None
    )
    importlib.import_module("portal.migrations.0006_canonical_image_hosts").canonical_images(
        apps, None
    )
    logins = RegistryCredential.objects.order_by("registry").values_list("registry", "username")
    assert list(logins) == [("docker.io", "new"), ("registry.example.com", "ci")]
    assert Project.objects.get(pk=project.pk).image == "localhost:5000/alpha/hello"
