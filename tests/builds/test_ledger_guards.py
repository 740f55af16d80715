"""The ledger below the model: the database refuses raw UPDATE and DELETE (a trigger on SQLite
and on PostgreSQL), whatever a record names cannot be deleted, and the admin deletes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client

from builds.models import Build, ManifestRecord
from builds.services import queue_build
from builds.worker import work_once
from fakes import INDEX_DIGEST, FakeBackend
from portal.models import Project, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(project: Project, alice: Any) -> ManifestRecord:
    queue_build(project, alice)
    work_once("w1", FakeBackend())
    return ManifestRecord.objects.get()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE builds_manifestrecord SET digest = 'sha256:forged'",
        "UPDATE builds_manifestrecord SET pushed_by_id = NULL",
        "DELETE FROM builds_manifestrecord",
    ],
)
def test_the_database_refuses_raw_rewrites(record: ManifestRecord, sql: str) -> None:
    # Raw SQL passes by the model and its queryset: the trigger is what stops it.
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    again = ManifestRecord.objects.get()
    assert again.digest == INDEX_DIGEST and again.pushed_by_id == record.pushed_by_id


def test_inserts_still_append(record: ManifestRecord) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO builds_manifestrecord (kind, sources, reference, digest, media_type,"
            " platforms, attestations, pushed_at, source_url, source_ref, source_commit,"
            " builder_node, previous_digest) VALUES ('merge', '[]', 'r:t', 'sha256:2', '',"
            " '{}', '[]', %s, '', '', '', '', '')",
            [record.pushed_at],
        )
    assert ManifestRecord.objects.count() == 2


def test_what_a_record_names_cannot_be_deleted(record: ManifestRecord) -> None:
    build = Build.objects.get(pk=record.build_id)
    for named in [
        build,
        Project.objects.get(pk=record.project_id),
        Team.objects.get(slug="alpha"),
        get_user_model().objects.get(pk=record.pushed_by_id),
    ]:
        with pytest.raises(ProtectedError), transaction.atomic():
            named.delete()
    assert ManifestRecord.objects.get().build_id == build.pk
    assert Build.objects.filter(pk=build.pk).exists()


def test_the_admin_deletes_no_ledger_row_nor_what_it_names(
    record: ManifestRecord, django_user_model: Any
) -> None:
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(root)
    base = "/admin/builds/manifestrecord/"
    assert client.post(f"{base}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.post(
        base, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"}
    )
    assert changelist.status_code in (200, 302)
    page = client.get(f"{base}{record.pk}/change/")
    assert page.status_code == 200 and f"{record.pk}/delete/" not in page.content.decode()
    # Deleting the project through its admin page shows what protects it and deletes nothing.
    answer = client.post(f"/admin/portal/project/{record.project_id}/delete/", {"post": "yes"})
    assert answer.status_code == 200 and "Cannot delete project" in answer.content.decode()
    assert ManifestRecord.objects.count() == 1
    assert Project.objects.filter(pk=record.project_id).exists()
