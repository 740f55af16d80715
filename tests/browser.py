"""A real browser against a real portal process, for tests that need no Docker: the portal runs
as `manage.py serve --no-worker` on the test database, Debian's chromium drives it through
Playwright. Test modules take the fixtures as `portal_url = browser.portal_url` (and chromium),
and mark themselves `django_db(transaction=True)` (the server process reads what the test writes).

Skips without chromium, except with CI=true, where it fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from stack import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("CROSSPORT_ARTIFACTS", "/tmp/crossport-artifacts"))


def _database_url() -> str:
    """The test database, as a DATABASE_URL for the server process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def portal_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "PORTAL_CHANNEL_PREFIX": f"browser-{port}",
        "PORTAL_DEBUG": "false",
        # A data folder of its own, as on a fresh install (static files collected at start),
        # with the test process's key, so what the test sealed the server can open.
        "PORTAL_DATA_DIR": str(tmp_path / "portal-data"),
        "PORTAL_SECRET_KEY": settings.SECRET_KEY,
        "PORTAL_ENCRYPTION_KEY": settings.PORTAL_ENCRYPTION_KEY,
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/login/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"portal did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium missing at {CHROMIUM}")
        pytest.skip(f"chromium missing at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(page: Any, portal_url: str, username: str, password: str) -> None:
    """The login form, as a person fills it (the tests' users have `<name>-password-1`)."""
    page.goto(portal_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
