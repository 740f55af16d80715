"""Guessing (issue: Hardening): failed logins are counted per account and per client address on
the cache, and past the limit every attempt answers 429 with Retry-After, the right password
included, until the window passes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from portal import throttle

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
NEIGHBOUR = "198.51.100.7"
RIGHT = "alice-password-1"
WRONG = "canary-wrong-password-7"


@pytest.fixture(autouse=True)
def _fast_hasher(settings: Any) -> None:
    """These tests try hundreds of passwords; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(
    password: str, username: str = "alice", address: str = ATTACKER, path: str = "/login/"
) -> Any:
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def assert_locked_out(response: Any, window: int = 900) -> None:
    assert response.status_code == 429
    assert window - 5 < int(response["Retry-After"]) <= window


# --- logins --------------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_from_every_address(alice: Any, bob: Any) -> None:
    for i in range(10):
        response = attempt(WRONG, address=f"192.0.2.{i}")
        assert response.status_code == 200 and "correct username and password" in response.text
    browser = Client(REMOTE_ADDR=NEIGHBOUR)
    response = browser.post("/login/", {"username": "alice", "password": RIGHT})
    assert_locked_out(response)
    assert "Too many failed logins" in response.text and "<form" in response.text
    assert browser.get("/").status_code == 302  # still logged out
    # Another account is not affected.
    assert attempt("bob-password-1", username="bob", address=NEIGHBOUR).status_code == 302


def test_thirty_failures_from_one_address_lock_that_address(alice: Any, bob: Any) -> None:
    for i in range(30):
        assert attempt(WRONG, username=f"guess{i}").status_code == 200
    assert_locked_out(attempt(RIGHT))
    assert_locked_out(attempt("bob-password-1", username="bob"))
    assert attempt(RIGHT, address=NEIGHBOUR).status_code == 302


def test_the_lockout_ends_when_the_window_passes(alice: Any, settings: Any) -> None:
    settings.PORTAL_LOGIN_WINDOW_SECONDS = 1
    for _ in range(10):
        attempt(WRONG)
    assert_locked_out(attempt(RIGHT), window=1)
    time.sleep(1.2)
    assert attempt(RIGHT).status_code == 302


def test_the_limits_are_settings(alice: Any, settings: Any) -> None:
    settings.PORTAL_LOGIN_FAILURES_PER_USER = 2
    attempt(WRONG)
    assert attempt(RIGHT).status_code == 302  # one failure: below the limit
    attempt(WRONG, address=NEIGHBOUR)
    attempt(WRONG, address=NEIGHBOUR)
    assert attempt(RIGHT).status_code == 429


def test_a_good_login_clears_its_accounts_failures_but_not_its_addresses(
    alice: Any, bob: Any
) -> None:
    for _ in range(9):
        attempt(WRONG)
    assert attempt(RIGHT).status_code == 302
    for _ in range(9):
        attempt(WRONG)
    # 18 failures for alice, but the success in between proved the owner is there.
    assert attempt(RIGHT).status_code == 302
    # The address's 18 still count: a login of one's own cannot wash an address clean.
    for i in range(12):
        attempt(WRONG, username=f"guess{i}")
    assert_locked_out(attempt("bob-password-1", username="bob"))


def test_admin_login_shares_the_lockout(alice: Any) -> None:
    alice.is_staff = True
    alice.save()
    for _ in range(5):
        assert attempt(WRONG, path="/admin/login/").status_code == 200
    for _ in range(5):
        assert attempt(WRONG).status_code == 200
    admin_response = attempt(RIGHT, path="/admin/login/", address=NEIGHBOUR)
    assert_locked_out(admin_response)
    assert "Too many failed logins" in admin_response.text
    assert_locked_out(attempt(RIGHT, address=NEIGHBOUR))


def test_a_staff_login_refused_by_the_admin_is_not_a_wrong_password(alice: Any) -> None:
    """The admin refuses non-staff users with the same message; their password was right."""
    for _ in range(12):
        assert attempt(RIGHT, path="/admin/login/").status_code == 200
    assert attempt(RIGHT).status_code == 302


def test_login_logs_name_the_user_and_address_never_the_password(alice: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="crossport.security")
    for _ in range(11):
        attempt(WRONG)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "crossport.security")
    assert "'alice'" in text and ATTACKER in text and "10" in text
    assert WRONG not in caplog.text and RIGHT not in caplog.text


def test_spellings_of_one_account_or_client_count_as_one(alice: Any) -> None:
    for i, name in enumerate(["Alice", "ALICE", "ａｌｉｃｅ"] * 3 + ["alice"]):  # ａ: NFKC folds it
        attempt(WRONG, username=name, address=f"192.0.2.{i}")
    assert_locked_out(attempt(RIGHT, address=NEIGHBOUR))
    assert throttle.client_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert throttle.client_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert throttle.client_address(None) == "unknown"


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_the_lockout_holds_across_portal_processes(alice: Any, settings: Any) -> None:
    """Another portal process (here: a separate Python) records the failures; this one obeys."""
    code = (
        "import django; django.setup()\n"
        "from portal import throttle\n"
        "for _ in range(10): throttle.login_failed('alice', '192.0.2.99')\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=60)
    assert_locked_out(attempt(RIGHT, address=NEIGHBOUR))
