"""The ledger: previous digest when a tag moves, filters, exports, the inspect view (the
database's own refusals are in test_ledger_guards.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from builds.models import ManifestRecord
from builds.services import queue_build
from builds.worker import work_once
from fakes import INDEX_DIGEST, PLATFORM_DIGESTS, FakeBackend

pytestmark = pytest.mark.django_db
OTHER = {p: "sha256:" + str(n) * 64 for n, p in enumerate(PLATFORM_DIGESTS, start=5)}


class Moved(FakeBackend):
    """A second push of the same tag with different content."""

    def read_index(self, ref: Any, digest: str, tick: Any) -> Any:
        summary = super().read_index(ref, digest, tick)
        summary.platforms = dict(OTHER)
        return summary

    def build(
        self, specs: Any, on_output: Any, should_stop: Any, grace: float, *extra: Any
    ) -> list[int]:
        codes = super().build(specs, on_output, should_stop, grace, *extra)
        specs[0].metadata_file.write_text('{"containerimage.digest": "sha256:' + "cd" * 32 + '"}')
        return codes


def test_a_moved_tag_records_the_previous_digest(project: Any, alice: Any) -> None:
    queue_build(project, alice)
    work_once("w1", FakeBackend())
    queue_build(project, alice)
    work_once("w1", Moved())
    first, second = ManifestRecord.objects.order_by("pk")
    assert first.previous_digest == "" and second.previous_digest == INDEX_DIGEST
    assert second.digest == "sha256:" + "cd" * 32


def test_filters_and_csv_export(project: Any, alice: Any, bob: Any, api: Any) -> None:
    queue_build(project, alice, tags=["v1"])
    work_once("w1", FakeBackend())
    queue_build(project, bob, tags=["v2"])
    work_once("w1", FakeBackend())
    client = api(alice)
    tags = lambda q: [m["tag"] for m in client.get(f"/api/v1/manifests?{q}").json()["manifests"]]  # noqa: E731
    assert tags("tag=v1") == ["localhost:5000/alpha/hello:v1"]
    assert tags("person=bob") == ["localhost:5000/alpha/hello:v2"]
    assert tags("team=alpha") == tags("") and len(tags("")) == 2
    assert tags("since=2999-01-01") == []
    assert client.get("/api/v1/manifests?team=beta").status_code == 404  # not alice's team
    assert client.get("/api/v1/manifests?since=yesterday").status_code == 400
    exported = client.get(f"/api/v1/manifests?project={project.pk}&format=csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert exported["Content-Type"].startswith("text/csv") and len(rows) == 2
    assert {r["pushed_by"] for r in rows} == {"alice", "bob"}
    assert {(r["team"], r["kind"], r["media_type"]) for r in rows} == {
        ("alpha", "build", ManifestRecord.objects.first().media_type)  # type: ignore[union-attr]
    }
    assert all(r["digest"] == INDEX_DIGEST and "linux/arm/v7" in r["platforms"] for r in rows)


def test_history_page_filters_and_exports(project: Any, alice: Any, charlie: Any) -> None:
    queue_build(project, alice, tags=["v1", "latest"])
    work_once("w1", FakeBackend())
    client = Client()
    client.force_login(alice)
    page = client.get(f"/projects/{project.pk}/history?tag=v1").content.decode()
    assert "hello:v1" in page and "hello:latest" not in page
    data = client.get(f"/projects/{project.pk}/history?format=json&tag=latest").json()
    assert [m["tag"] for m in data["manifests"]] == ["localhost:5000/alpha/hello:latest"]
    csv_text = client.get(f"/projects/{project.pk}/history?format=csv").content.decode()
    assert csv_text.count(INDEX_DIGEST) == 2
    outsider = Client()
    outsider.force_login(charlie)
    assert outsider.get(f"/projects/{project.pk}/history?format=csv").status_code == 404


def _fake_cli(tmp_path: Any, settings: Any, script: str) -> None:
    import stat

    cli = tmp_path / "docker"
    cli.write_text("#!/bin/sh\n" + script)
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    settings.PORTAL_DOCKER_CLI = str(cli)


def test_inspect_view_shows_drift(
    project: Any, alice: Any, charlie: Any, tmp_path: Any, settings: Any
) -> None:
    from pathlib import Path

    index = Path(__file__).parent / "data" / "index-go-hello-3platforms.json"
    queue_build(project, alice)
    work_once("w1", FakeBackend())
    record = ManifestRecord.objects.get()
    client = Client()
    client.force_login(alice)

    _fake_cli(tmp_path, settings, f"cat {index}\n")  # the registry serves other content now
    page = client.get(f"/manifests/{record.pk}/").content.decode()
    assert "linux/arm/v7" in page and 'id="attestations"' in page
    assert "moved" not in page  # the page never waits for the registry: the drift comes after
    drift = client.get(f"/manifests/{record.pk}/drift").content.decode()
    assert "moved" in drift and INDEX_DIGEST in page

    _fake_cli(
        tmp_path,
        settings,
        "echo 'ERROR: localhost:5000/alpha/hello:latest: not found' >&2; exit 1\n",
    )
    assert "tag deleted" in client.get(f"/manifests/{record.pk}/drift").content.decode()

    outsider = Client()
    outsider.force_login(charlie)
    assert outsider.get(f"/manifests/{record.pk}/").status_code == 404
    assert outsider.get(f"/manifests/{record.pk}/drift").status_code == 404


def test_csv_cells_cannot_become_formulas() -> None:
    from builds.ledger import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _cell("-x") == "'-x"
    assert _cell("sha256:ab") == "sha256:ab"


def test_the_ledger_page_shows_one_row_per_push_with_all_its_tags(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    first = queue_build(project, alice, tags=["v1", "latest", "stable"])
    work_once("w1", FakeBackend())
    second = queue_build(project, alice, tags=["v2"])
    work_once("w1", FakeBackend())
    assert ManifestRecord.objects.count() == 4  # the ledger keeps a row per tag
    client = Client()
    client.force_login(alice)
    for url in (f"/projects/{project.pk}/history", "/teams/alpha/manifests/"):
        page = client.get(url).content.decode()
        rows = page.split('<tr data-push="')[1:]
        assert len(rows) == 2, url  # two pushes
        newest, oldest = rows
        assert f'href="/builds/{second.pk}/"' in newest and ":v2</code>" in newest
        assert f'href="/builds/{first.pk}/"' in oldest
        for tag in ("v1", "latest", "stable"):
            assert f"localhost:5000/alpha/hello:{tag}</code>" in oldest
