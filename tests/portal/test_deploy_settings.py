"""Production settings: with PORTAL_HTTPS=true and a real secret key, Django's deployment check
passes at warning level; without it the check names what HTTPS would turn on. Each run is a
fresh process (settings are read once, from the environment) with a data dir of its own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PORTAL_")
        and name not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={
            **inherited,
            "PORTAL_DATA_DIR": str(tmp_path / "data"),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(50),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _deploy_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)


def _settings(tmp_path: Path, *names: str, **env: str) -> dict[str, object]:
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}))"
    )
    result = _run(tmp_path, ["-c", script], DJANGO_SETTINGS_MODULE="portal.settings", **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_behind_tls_the_deploy_check_passes(tmp_path: Path) -> None:
    result = _deploy_check(tmp_path, PORTAL_HTTPS="true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_https_the_deploy_check_names_what_is_missing(tmp_path: Path) -> None:
    result = _deploy_check(tmp_path)
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, check


def test_https_turns_on_hsts_secure_cookies_and_the_redirect(tmp_path: Path) -> None:
    names = (
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SECURE_PROXY_SSL_HEADER",
    )
    on = _settings(tmp_path, *names, PORTAL_HTTPS="true")
    assert on["SECURE_SSL_REDIRECT"] is True
    assert on["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert on["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True and on["SECURE_HSTS_PRELOAD"] is False
    assert on["SESSION_COOKIE_SECURE"] is True and on["CSRF_COOKIE_SECURE"] is True
    assert on["SESSION_COOKIE_HTTPONLY"] is True and on["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert on["SECURE_PROXY_SSL_HEADER"] is None  # believed only when the operator names it

    off = _settings(tmp_path, *names)
    assert off["SECURE_SSL_REDIRECT"] is False and off["SECURE_HSTS_SECONDS"] == 0
    assert off["SESSION_COOKIE_SECURE"] is False and off["CSRF_COOKIE_SECURE"] is False

    tuned = _settings(
        tmp_path,
        *names,
        PORTAL_HTTPS="true",
        PORTAL_HSTS_SECONDS="3600",
        PORTAL_HSTS_INCLUDE_SUBDOMAINS="false",
        PORTAL_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO=https",
    )
    assert tuned["SECURE_HSTS_SECONDS"] == 3600
    assert tuned["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert tuned["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_malformed_proxy_header_stops_start_up(tmp_path: Path) -> None:
    for value in ("X-Forwarded-Proto: https", "HTTP_X_FORWARDED_PROTO", "HTTP_X=", "=https"):
        result = _deploy_check(tmp_path, PORTAL_HTTPS="true", PORTAL_PROXY_SSL_HEADER=value)
        assert result.returncode != 0, value
        assert "PORTAL_PROXY_SSL_HEADER" in result.stderr, value


def test_a_setting_comes_from_the_file_its_FILE_variable_names(tmp_path: Path) -> None:
    # The compose file's secrets: values in files under /run/secrets, not in the environment.
    # A value from a file is taken as it is: one that starts with $ names no other variable.
    files = {"key": "k" * 60 + "\n", "sealing": "$HOME" + "s" * 40 + "\r\n", "db": "$pa ss$word\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    got = _settings(
        tmp_path,
        "SECRET_KEY",
        "PORTAL_ENCRYPTION_KEY",
        "DATABASES",
        PORTAL_SECRET_KEY_FILE=str(tmp_path / "key"),  # wins over PORTAL_SECRET_KEY
        PORTAL_ENCRYPTION_KEY_FILE=str(tmp_path / "sealing"),
        DATABASE_URL="postgres://crossport@db.invalid:5432/crossport",
        DATABASE_PASSWORD_FILE=str(tmp_path / "db"),
    )
    assert got["SECRET_KEY"] == "k" * 60  # the line break is not part of it
    assert got["PORTAL_ENCRYPTION_KEY"] == "$HOME" + "s" * 40
    database = got["DATABASES"]["default"]  # type: ignore[index]
    assert (database["USER"], database["PASSWORD"]) == ("crossport", "$pa ss$word")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (b"", "{path} is empty"),
        (b"\n", "{path} is empty"),
        (b"\xff\xfe key", "{path} is not UTF-8 text"),
    ],
)
def test_a_FILE_variable_naming_no_usable_file_stops_start_up(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    result = _run(tmp_path, ["manage.py", "check"], PORTAL_SECRET_KEY_FILE=str(path))
    assert result.returncode != 0
    assert f"PORTAL_SECRET_KEY_FILE: {problem.format(path=path)}" in result.stderr
