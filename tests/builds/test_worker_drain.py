"""A stopping worker loses nothing: on SIGTERM `manage.py buildworker` claims no more, lets a
running build finish within PORTAL_WORKER_DRAIN_SECONDS, then hands it back to the queue, where
another worker runs it from the start, and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from builds.models import Build, BuildPlatform, ManifestRecord
from builds.worker import work_once
from fakes import FakeBackend

REPO = Path(__file__).resolve().parents[2]


def test_a_build_past_the_drain_time_goes_back_to_the_queue_and_another_worker_runs_it(
    queued_build: Build,
) -> None:
    handback = threading.Event()
    backend = FakeBackend(on_chunk=lambda n: n == 2 and handback.set(), chunk_size=400)
    ran = work_once("w1", backend, handback)
    assert ran is not None and ran.pk == queued_build.pk
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.QUEUED, build.reason
    assert build.worker == "" and build.plan == {}
    assert build.finished_at is None and build.reason == "" and build.node is None
    assert set(build.platform_states.values_list("state", flat=True)) == {
        BuildPlatform.State.PENDING
    }
    assert not ManifestRecord.objects.exists()  # nothing was pushed under its name
    texts = list(build.log_lines.values_list("text", flat=True))
    assert texts[-1] == (
        "Crossport: worker w1 is stopping (a restart or an upgrade) and its drain time is up: "
        "the build goes back to the queue and starts again"
    )

    again = work_once("w2", FakeBackend())
    assert again is not None and again.pk == build.pk
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert build.worker == "w2" and ManifestRecord.objects.filter(build=build).count() == 1
    # The page's log tells the whole story: the first attempt, the hand-back, the second.
    texts = list(build.log_lines.values_list("text", flat=True))
    assert sum("goes back to the queue" in t for t in texts) == 1
    assert texts[-1].startswith("Crossport: succeeded")


def test_a_build_that_ends_within_the_drain_time_is_not_touched(queued_build: Build) -> None:
    handback = threading.Event()  # never set: the build ends first
    work_once("w1", FakeBackend(), handback)
    assert Build.objects.get(pk=queued_build.pk).state == Build.State.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_an_idle_worker_at_once_with_exit_0(tmp_path: Path) -> None:
    from django.db import connection

    db = connection.settings_dict
    url = (
        f"sqlite:///{db['NAME']}"
        if db["ENGINE"].endswith("sqlite3")
        else f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "PORTAL_DATA_DIR": str(tmp_path)}
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "buildworker", "--poll", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(3)  # started, migrated, polling
    assert worker.poll() is None
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert time.monotonic() - started < 5  # idle: nothing to drain
    assert "stopping: no new builds; a running one has 25 s to finish" in output


@pytest.mark.django_db(transaction=True)  # the worker thread reads what the test commits
def test_an_idle_worker_wakes_when_this_process_queues_a_build(project: Any, alice: Any) -> None:
    """The embedded worker (in `manage.py serve`) starts a build queued through the portal at
    once, not at its next poll."""
    from builds import events
    from builds.services import queue_build
    from builds.worker import run_forever

    stop = threading.Event()
    events.QUEUED.clear()
    worker = threading.Thread(target=run_forever, args=(stop, "w1", 30.0))
    worker.start()
    try:
        time.sleep(0.5)  # idle, waiting out a 30 s poll
        started = time.monotonic()
        build = queue_build(project, alice)
        while Build.objects.get(pk=build.pk).state == Build.State.QUEUED:
            assert time.monotonic() - started < 10, "the worker slept through the queueing"
            time.sleep(0.05)
    finally:
        stop.set()
        events.wake_workers()
        worker.join(timeout=60)
