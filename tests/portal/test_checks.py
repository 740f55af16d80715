"""System checks: a broken plugin, unreadable or unkeyed secrets and unknown strategies stop `check`."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import lang_plugins
from builds.models import RegistryCredential
from portal.models import Team


class _Broken:
    name = "broken"
    value = "crossport_broken:Plugin"
    group = lang_plugins.ENTRY_POINT_GROUP

    def load(self) -> object:
        raise ImportError("No module named 'crossport_broken'")


@pytest.fixture
def broken_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lang_plugins, "entry_points", lambda *, group: [_Broken()])
    lang_plugins.clear_plugin_cache()
    yield
    lang_plugins.clear_plugin_cache()


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages if (m.id or "").startswith("crossport.")]


@pytest.mark.django_db
def test_a_clean_install_passes_the_checks() -> None:
    assert ids(checks.run_checks(include_deployment_checks=False)) == []
    call_command("check")  # raises SystemCheckError on any error


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_plugin")
def test_a_plugin_that_fails_to_load_fails_manage_py_check() -> None:
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "crossport.E001" in str(info.value)
    assert "'broken' (crossport_broken:Plugin)" in str(info.value)
    assert "ImportError" in str(info.value)


@pytest.fixture
def stored_login(alpha: Team, settings: Any) -> RegistryCredential:
    settings.PORTAL_ENCRYPTION_KEY = "key-one"
    login = RegistryCredential(team=alpha, registry="registry.example.com", username="ci")
    login.set_password("s3cret-token")
    login.save()
    return login


def test_stored_secrets_without_their_own_key_warn(
    stored_login: RegistryCredential, settings: Any
) -> None:
    assert ids(checks.run_checks()) == []
    settings.PORTAL_ENCRYPTION_KEY = ""
    # Sealed with "key-one", opened with the secret key: both problems are named.
    assert ids(checks.run_checks()) == ["crossport.E002", "crossport.W003"]


def test_stored_secrets_sealed_with_the_secret_key_only_warn(alpha: Team, settings: Any) -> None:
    settings.PORTAL_ENCRYPTION_KEY = ""
    login = RegistryCredential(team=alpha, registry="registry.example.com", username="ci")
    login.set_password("s3cret-token")
    login.save()
    (warning,) = [m for m in checks.run_checks() if m.id == "crossport.W003"]
    assert "rotating SECRET_KEY" in warning.msg
    settings.PORTAL_ENCRYPTION_KEY = settings.SECRET_KEY  # the hint's fix keeps it readable
    assert ids(checks.run_checks()) == []


def test_a_changed_key_fails_check_and_never_shows_the_secret(
    stored_login: RegistryCredential, settings: Any
) -> None:
    settings.PORTAL_ENCRYPTION_KEY = "key-two"
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    text = str(info.value)
    assert "crossport.E002" in text and "registry login for registry.example.com" in text
    assert "s3cret-token" not in text


@pytest.mark.parametrize("strategy", ["teleport", "builder:gone"])
def test_queued_builds_naming_an_unknown_strategy_fail_check(
    queued_build: Any, strategy: str
) -> None:
    assert ids(checks.run_checks()) == []
    type(queued_build).objects.filter(pk=queued_build.pk).update(strategy=strategy)
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "crossport.E004" in str(info.value)
    assert f"Queued builds {queued_build.pk} use the unknown strategy {strategy!r}" in str(
        info.value
    )


def test_a_builder_that_exists_is_a_known_strategy(queued_build: Any) -> None:
    from builds.models import BuildxBuilder

    BuildxBuilder.objects.create(name="fleet")
    type(queued_build).objects.filter(pk=queued_build.pk).update(strategy="builder:fleet")
    assert ids(checks.run_checks()) == []


def test_deploy_keys_and_git_tokens_are_checked_like_other_secrets(
    project: Any, settings: Any
) -> None:
    from portal import gitaccess

    settings.PORTAL_ENCRYPTION_KEY = "key-one"
    gitaccess.deploy_key(project)
    gitaccess.set_git_token(project, "ci", "git-s3cret")
    assert ids(checks.run_checks()) == []
    settings.PORTAL_ENCRYPTION_KEY = "key-two"
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    text = str(info.value)
    assert "deploy key of project alpha/hello" in text and "git token of project" in text
    assert "git-s3cret" not in text and "PRIVATE KEY" not in text


def test_a_build_secret_the_key_cannot_open_fails_check(alpha: Team, settings: Any) -> None:
    from portal import team_secrets

    settings.PORTAL_ENCRYPTION_KEY = "key-one"
    team_secrets.create(alpha, "npmrc", "npm-token-value", None, None)
    assert ids(checks.run_checks()) == []
    settings.PORTAL_ENCRYPTION_KEY = "key-two"
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "build secret alpha/npmrc" in str(info.value)
    assert "npm-token-value" not in str(info.value)
