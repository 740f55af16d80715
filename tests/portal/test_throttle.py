"""Guessing (issue: Hardening): failed logins and bad API tokens are counted per account and per
client address on the cache, and past the limit every attempt answers 429 with Retry-After,
the right password or a good token included, until the window passes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import forms as auth_forms
from django.db import connections
from django.test import Client

from builds.models import Build
from portal import throttle
from portal.asgi import application
from portal.models import ApiToken

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
    # One failure and a short window: the test needs the lockout checked before it passes,
    # also on a busy machine.
    settings.PORTAL_LOGIN_FAILURES_PER_USER = 1
    settings.PORTAL_LOGIN_WINDOW_SECONDS = 2
    attempt(WRONG)
    assert_locked_out(attempt(RIGHT), window=2)
    time.sleep(2.2)
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


def test_only_wrong_passwords_count(alice: Any, bob: Any) -> None:
    for _ in range(15):  # no password: nothing was judged
        assert (
            Client(REMOTE_ADDR=ATTACKER).post("/login/", {"username": "alice"}).status_code == 200
        )
    for _ in range(9):
        attempt(WRONG)
    # Someone logged in, posting alice's name without a password, is no login of alice's.
    browser = Client(REMOTE_ADDR=ATTACKER)
    browser.force_login(bob)
    assert browser.post("/login/", {"username": "alice"}).status_code == 200
    attempt(WRONG)
    assert_locked_out(attempt(RIGHT))


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


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_cannot_all_slip_past_the_check(alice: Any, monkeypatch: Any) -> None:
    """A password check is slow on purpose: 30 guesses sent at once must not all be judged
    because none of them had failed yet when each was let in."""
    real = auth_forms.authenticate

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth_forms, "authenticate", slow)
    start = threading.Barrier(30)
    statuses: list[int] = []

    def guess(i: int) -> None:
        start.wait()
        try:
            statuses.append(attempt(WRONG, address=f"192.0.2.{i}").status_code)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 10 + [429] * 20


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
        "for _ in range(10): throttle.login_attempt('alice', '192.0.2.99').failed()\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=60)
    assert_locked_out(attempt(RIGHT, address=NEIGHBOUR))


# --- API tokens ----------------------------------------------------------------------------


def bearer(token: str, address: str = ATTACKER, path: str = "/api/v1/projects") -> Any:
    return Client(REMOTE_ADDR=address).get(path, headers={"Authorization": f"Bearer {token}"})


def test_twenty_bad_tokens_lock_the_address_out_of_the_api(alice: Any) -> None:
    _, good = ApiToken.issue(alice, "t")
    assert bearer(good).status_code == 200
    for i in range(20):
        assert bearer(f"cp_guess-{i}").status_code == 401
    response = bearer(good)
    assert response.status_code == 429
    assert 55 < int(response["Retry-After"]) <= 60
    assert "error" in response.json()
    assert bearer(good, address=NEIGHBOUR).status_code == 200


def test_requests_without_a_token_are_not_guesses(alice: Any) -> None:
    _, good = ApiToken.issue(alice, "t")
    for _ in range(25):
        assert Client(REMOTE_ADDR=ATTACKER).get("/api/v1/projects").status_code == 401
    assert bearer(good).status_code == 200


def test_the_token_window_is_a_setting(alice: Any, settings: Any) -> None:
    settings.PORTAL_TOKEN_FAILURES_PER_ADDRESS = 1
    settings.PORTAL_TOKEN_WINDOW_SECONDS = 2
    _, good = ApiToken.issue(alice, "t")
    bearer("cp_guess")
    assert 0 < int(bearer(good)["Retry-After"]) <= 2
    time.sleep(2.2)
    assert bearer(good).status_code == 200


def test_token_logs_name_the_address_never_the_token(alice: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="crossport.security")
    _, good = ApiToken.issue(alice, "t")
    for _ in range(21):
        bearer("cp_canary-token-value")
    bearer(good)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "crossport.security")
    assert ATTACKER in text and "20" in text
    assert "canary-token-value" not in caplog.text and good not in caplog.text


# --- websockets ----------------------------------------------------------------------------


@pytest.fixture
async def _close_the_sync_threads_connection() -> Any:
    """As in the consumer tests: PostgreSQL cannot drop a test database still in use."""
    yield
    await sync_to_async(connections.close_all)()


def socket(build: Build, token: str, address: str = ATTACKER) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(
        application,
        f"/ws/builds/{build.pk}/?format=json",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    comm.scope["client"] = (address, 40000)  # the dict the application was handed
    return comm


async def closed_with(comm: WebsocketCommunicator) -> int:
    await comm.connect()
    while (message := await comm.receive_output(timeout=5))["type"] != "websocket.close":
        pass
    return int(message["code"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_the_sync_threads_connection")
async def test_bad_socket_tokens_count_and_lock_the_address_out(
    queued_build: Build, alice: Any
) -> None:
    _, good = await sync_to_async(ApiToken.issue)(alice, "t")
    for i in range(10):
        assert await closed_with(socket(queued_build, f"cp_guess-{i}")) == 4404
    for i in range(10):  # the API and the sockets share one count per address
        assert (await sync_to_async(bearer)(f"cp_guess-{i}")).status_code == 401
    comm = socket(queued_build, good)
    connected, _ = await comm.connect()
    assert connected
    refusal = json.loads(await comm.receive_from(timeout=5))
    assert refusal["type"] == "error" and 55 < refusal["retry_after"] <= 60
    assert (await comm.receive_output(timeout=5)) == {
        "type": "websocket.close",
        "code": 4429,
        "reason": refusal["error"],
    }
    other = socket(queued_build, good, address=NEIGHBOUR)
    connected, _ = await other.connect()
    assert connected and json.loads(await other.receive_from(timeout=5))["type"] == "status"
    await other.disconnect()
