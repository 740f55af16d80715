"""Team pages: members see the team, admins manage it, outsiders get 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal.models import Membership

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_adds_changes_and_removes_members(alice: Any, bob: Any, charlie: Any) -> None:
    client = login(alice)
    assert "bob" in client.get("/teams/alpha/").content.decode()
    assert (
        client.post("/teams/alpha/", {"username": "charlie", "role": "member"}).status_code == 302
    )
    charlie_in_alpha = Membership.objects.get(user=charlie, team__slug="alpha")
    client.post("/teams/alpha/", {"membership": charlie_in_alpha.pk, "role": "admin"})
    charlie_in_alpha.refresh_from_db()
    assert charlie_in_alpha.role == "admin"
    client.post("/teams/alpha/", {"membership": charlie_in_alpha.pk, "remove": "1"})
    assert not Membership.objects.filter(pk=charlie_in_alpha.pk).exists()
    refused = client.post("/teams/alpha/", {"username": "nobody", "role": "member"})
    assert "No active user called nobody" in refused.content.decode()


def test_the_last_admin_stays(alice: Any, bob: Any) -> None:
    mine = Membership.objects.get(user=alice)
    client = login(alice)
    client.post("/teams/alpha/", {"membership": mine.pk, "remove": "1"})
    client.post("/teams/alpha/", {"membership": mine.pk, "role": "member"})
    mine.refresh_from_db()
    assert mine.role == "admin"


def test_members_see_but_cannot_manage(alice: Any, bob: Any, charlie: Any) -> None:
    client = login(bob)
    page = client.get("/teams/alpha/").content.decode()
    assert "alice" in page and 'id="add-member"' not in page
    assert client.post("/teams/alpha/", {"username": "charlie", "role": "admin"}).status_code == 403
    assert not Membership.objects.filter(user=charlie, team__slug="alpha").exists()


def test_outsiders_get_404(alice: Any, charlie: Any) -> None:
    client = login(charlie)
    assert client.get("/teams/alpha/").status_code == 404
    assert client.post("/teams/alpha/", {"username": "charlie", "role": "admin"}).status_code == 404
    assert not Membership.objects.filter(user=charlie, team__slug="alpha").exists()
