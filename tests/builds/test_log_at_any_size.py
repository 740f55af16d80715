"""Logs at any size: the build page shows a window of the log (the last lines, or those around
a failure's headline) with buttons for more; the whole log downloads as text, streamed; a
build's stored output is capped (PORTAL_BUILD_LOG_MAX_BYTES) and finished builds' logs are
pruned after PORTAL_LOG_RETENTION_DAYS, the builds and the ledger staying."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from builds.buildlog import WINDOW, BuildLog
from builds.models import Build, LogLine


@pytest.fixture
def member(client: Client, alice: Any) -> Client:
    """A client logged in as alice, a member of the build's team."""
    client.force_login(alice)
    return client


def fill(build: Build, count: int) -> None:
    LogLine.objects.bulk_create(
        LogLine(build=build, seq=n, platform="linux/arm64" if n % 2 else "", text=f"line {n}")
        for n in range(1, count + 1)
    )


def shown(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', html)]


def test_a_long_log_opens_on_its_last_lines_and_earlier_ones_load_on_request(
    queued_build: Build, member: Client
) -> None:
    fill(queued_build, 5000)
    page = member.get(f"/builds/{queued_build.pk}/").content.decode()
    assert shown(page) == list(range(5000 - WINDOW + 1, 5001))
    assert f'?before={5000 - WINDOW + 1}"' in page and "3000 before these" in page
    assert "log-later" not in page
    # The websocket goes on after the last line shown.
    assert "?after=5000" in page

    more = member.get(f"/builds/{queued_build.pk}/log/lines?before=3001").content.decode()
    assert shown(more) == list(range(1001, 3001))
    assert '?before=1001"' in more and "1000 before these" in more
    first = member.get(f"/builds/{queued_build.pk}/log/lines?before=1001").content.decode()
    assert shown(first) == list(range(1, 1001)) and "log-earlier" not in first


def test_a_failed_build_opens_on_its_failure_with_later_lines_on_request(
    queued_build: Build, member: Client
) -> None:
    fill(queued_build, 5000)
    Build.objects.filter(pk=queued_build.pk).update(
        state=Build.State.FAILED, reason="linux/arm64, step 5/8: boom", reason_line=100
    )
    page = member.get(f"/builds/{queued_build.pk}/").content.decode()
    assert shown(page) == list(range(1, 1101))  # the failure and what followed it
    assert 'data-reason-line="100"' in page and "log-earlier" not in page
    assert '?after=1100"' in page and "up to line 5000" in page
    later = member.get(f"/builds/{queued_build.pk}/log/lines?after=1100").content.decode()
    assert shown(later) == list(range(1101, 3101)) and '?after=3100"' in later
    last = member.get(f"/builds/{queued_build.pk}/log/lines?after=4000").content.decode()
    assert shown(last) == list(range(4001, 5001)) and "log-later" not in last


def test_the_page_stays_small_at_any_log_size(queued_build: Build, member: Client) -> None:
    LogLine.objects.bulk_create(
        LogLine(build=queued_build, seq=n, platform="linux/amd64", text="#7 0.123 " + "x" * 120)
        for n in range(1, 60_001)
    )
    response = member.get(f"/builds/{queued_build.pk}/")
    assert response.status_code == 200
    assert len(response.content) < 1_000_000, len(response.content)


@pytest.mark.parametrize(
    "query", ["", "?before=x", "?before=1&after=2", "?after=-1", "?before=10000000000000000000"]
)
def test_bad_requests_for_more_lines_are_refused(
    queued_build: Build, member: Client, query: str
) -> None:
    response = member.get(f"/builds/{queued_build.pk}/log/lines{query}")
    assert response.status_code == 400


def test_the_full_log_downloads_as_text_for_members_only(
    queued_build: Build, member: Client, charlie: Any
) -> None:
    fill(queued_build, 12_345)
    response = member.get(f"/builds/{queued_build.pk}/log.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="build-{queued_build.pk}.log"'
    with pytest.warns(Warning, match="asynchronous iterators"):  # WSGI test client, ASGI view
        text = b"".join(response).decode()
    lines = text.splitlines()
    assert len(lines) == 12_345
    assert lines[0] == "[linux/arm64] line 1" and lines[1] == "line 2"
    assert lines[-1] == "[linux/arm64] line 12345"
    member.force_login(charlie)  # another team's member
    assert member.get(f"/builds/{queued_build.pk}/log.txt").status_code == 404


def test_output_past_the_cap_is_dropped_after_one_line_and_crossports_own_lines_stay(
    queued_build: Build, settings: Any
) -> None:
    settings.PORTAL_BUILD_LOG_MAX_BYTES = 100
    log = BuildLog(queued_build)
    log.write([("linux/amd64", 1, "x" * 29)] * 3)  # 90 bytes with newlines: kept
    log.write([("linux/amd64", 1, "y" * 29)] * 5)  # past 100: one line says so
    log.say("architecture check: ok")
    log.write([("linux/amd64", 1, "z")])
    texts = list(queued_build.log_lines.order_by("seq").values_list("text", flat=True))
    assert texts[:3] == ["x" * 29] * 3
    assert texts[3].startswith("Crossport: log truncated after 9.53674e-05 MB")
    assert texts[4:] == ["Crossport: architecture check: ok"]
    # A worker that takes the build over counts what is stored already.
    again = BuildLog(queued_build)
    again.write([("linux/amd64", 1, "w")])
    assert queued_build.log_lines.count() == 6  # its own truncation line, once


def test_finished_builds_logs_are_pruned_after_the_retention_and_say_so(
    project: Any, member: Client, settings: Any
) -> None:
    from builds.services import queue_build

    old, recent, running = (queue_build(project, None) for _ in range(3))
    now = timezone.now()
    Build.objects.filter(pk=old.pk).update(state="succeeded", finished_at=now - timedelta(days=10))
    Build.objects.filter(pk=recent.pk).update(state="failed", finished_at=now - timedelta(days=1))
    Build.objects.filter(pk=running.pk).update(state="running")
    for build in (old, recent, running):
        fill(build, 10)

    out = StringIO()
    call_command("prune_logs", stdout=out)
    assert "logs are kept" in out.getvalue()
    settings.PORTAL_LOG_RETENTION_DAYS = 7
    call_command("prune_logs", "--dry-run", stdout=out)
    assert "would remove 10 lines of 1 builds" in out.getvalue()
    assert LogLine.objects.count() == 30
    call_command("prune_logs", stdout=out)
    assert "removed 10 lines of 1 builds" in out.getvalue()
    assert (
        not old.log_lines.exists() and recent.log_lines.count() == running.log_lines.count() == 10
    )
    old.refresh_from_db()
    assert old.log_pruned_at is not None and old.state == "succeeded"
    call_command("prune_logs", stdout=out)  # again: nothing more
    assert (
        out.getvalue()
        .rstrip()
        .endswith(
            "removed 0 lines of 0 builds finished before " + f"{now - timedelta(days=7):%Y-%m-%d}"
        )
    )

    page = member.get(f"/builds/{old.pk}/").content.decode()
    assert 'id="log-pruned"' in page and shown(page) == []
    with pytest.warns(Warning):
        assert b"".join(member.get(f"/builds/{old.pk}/log.txt")).startswith(
            b"Crossport: this log was removed on"
        )
    with pytest.raises(CommandError, match="--days must be 1 or more"):
        call_command("prune_logs", "--days", "0")


def test_log_text_is_escaped_on_the_page_and_in_more_lines(
    queued_build: Build, member: Client
) -> None:
    hostile = '<img src=x onerror=alert(1)> "quoted" & done'
    LogLine.objects.create(build=queued_build, seq=1, platform='linux/"arm64', text=hostile)
    for url in (f"/builds/{queued_build.pk}/", f"/builds/{queued_build.pk}/log/lines?after=0"):
        html = member.get(url).content.decode()
        assert "<img" not in html and 'data-log-platform="linux/"arm64"' not in html
        assert "&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot; &amp; done" in html
        assert 'data-log-platform="linux/&quot;arm64"' in html
