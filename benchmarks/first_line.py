"""Log latency benchmark (run by hand; needs Debian's chromium, PostgreSQL and Redis, no Docker):
how long a build's log line takes from the worker writing it to a person seeing it on the build
page, in the scale-out configuration (separate processes, channels-redis).

The portal runs as `manage.py serve --no-worker` on a fresh PostgreSQL database with Redis as
channel layer; chromium (Playwright) opens a running build's page and records, with a
MutationObserver, when each line appears in the log. This script plays the worker: through the
worker's own path (builds.buildlog.BuildLog.write: store the rows, publish them on the channel
layer, which the page's websocket consumer renders and sends), it writes the lines of a
recorded buildx rawjson stream (tests/builds/data/go-hello-3platforms.rawjson, decoded by the
worker's own decoder and tracker) one batch at a time, `--every` seconds apart, noting the
wall clock of each write. Latency = when the browser saw the line - when the worker wrote it
(one machine, one clock).

Target (issue 14): the first line in the browser within 300 ms of the worker writing it.

    .venv/bin/python benchmarks/first_line.py [--repeat 3] [--every 0.05]
      [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/5]

Prints min/median/p95/max per run and ends with one JSON line:
{"first_line_ms": median of the runs' first lines, "p50_ms": ..., "p95_ms": ..., "lines": n}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RAWJSON = ROOT / "tests" / "builds" / "data" / "go-hello-3platforms.rawjson"
PASSWORD = "bench-password-1"

OBSERVE = """() => {
  window.__seen = {};
  const log = document.getElementById('log');
  new MutationObserver(() => {
    const now = Date.now();
    for (const line of log.querySelectorAll('.line')) {
      const seq = line.dataset.seq;
      if (!(seq in window.__seen)) window.__seen[seq] = now;
    }
  }).observe(log, {childList: true, subtree: true});
}"""


def recorded_lines() -> list[tuple[str | None, int, str]]:
    """The recorded build's log lines, through the worker's decoder and tracker."""
    from builds.progress import LogLine, ProgressTracker
    from builds.rawjson import StreamDecoder

    decoder, tracker = StreamDecoder(), ProgressTracker()
    lines = []
    for item in decoder.feed_bytes(RAWJSON.read_bytes()):
        for event in tracker.consume(item):
            if isinstance(event, LogLine):
                lines.append((event.platform, event.stream, event.text))
    return lines


def setup_database(database_url: str, redis_url: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_CHANNEL_PREFIX=f"bench-{uuid.uuid4().hex[:6]}",
        # Playwright's sync API keeps an event loop in this thread, where Django would refuse
        # the worker's database writes; here they are the point (one thread, nothing shared).
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, check=True
    )
    import django

    django.setup()


def running_build() -> Any:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from builds.models import Build
    from portal.models import Membership, Project, Team

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user("bench", password=PASSWORD)
        Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    project, _ = Project.objects.get_or_create(
        team=team,
        name="hello",
        defaults={
            "git_url": "https://git.example.com/bench/hello.git",
            "image": "localhost:5000/bench/hello",
            "platforms": ["linux/amd64", "linux/arm64", "linux/arm/v7"],
            "language": "go",
            "created_by": user,
        },
    )
    return Build.objects.create(
        project=project,
        state=Build.State.RUNNING,
        ref="main",
        platforms=project.platforms,
        requested_by=user,
        started_at=timezone.now(),
    )


def one_run(browser: Any, url: str, lines: list[Any], every: float) -> list[float]:
    from builds.buildlog import BuildLog

    build = running_build()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    if os.environ.get("BENCH_DEBUG"):
        page.on("console", lambda m: print("console:", m.text))
        page.on("websocket", lambda ws: print("ws:", ws.url))
    page.goto(url + "/login/")
    page.fill("input[name=username]", "bench")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    page.goto(f"{url}/builds/{build.pk}/")
    page.wait_for_selector("#build-status")
    page.wait_for_timeout(500)
    page.evaluate(OBSERVE)
    written: dict[int, float] = {}

    def worker() -> None:
        """In a thread of its own, as the worker's loop is (the publish goes through
        async_to_sync, which cannot run where Playwright's event loop does)."""
        from django.db import connection

        log = BuildLog(build)
        batch = 3  # what one read of buildx's output decodes to: a few lines
        for start in range(0, len(lines), batch):
            written[log.seq + 1] = time.time() * 1000  # the batch's first line
            log.write(lines[start : start + batch])
            time.sleep(every)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():
        page.wait_for_timeout(50)  # the page's events are handled meanwhile
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = page.evaluate("window.__seen")
        if all(str(seq) in seen for seq in written):
            break
        page.wait_for_timeout(100)
    if os.environ.get("BENCH_DEBUG"):
        print("seen", len(seen), "written", len(written), page.locator("#log .line").count())
    page.close()
    return [seen[str(seq)] - at for seq, at in written.items() if str(seq) in seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()

    import psycopg

    name = f"bench_first_line_{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    database = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        setup_database(database, args.redis_url)
        lines = recorded_lines()
        from browser import CHROMIUM, CHROMIUM_ARGS
        from pages import serve

        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PORTAL_DEBUG": "false", "PORTAL_DATA_DIR": tmp}
            server, url = serve(env, Path(tmp) / "server.log")
            try:
                from playwright.sync_api import sync_playwright

                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    runs = [one_run(browser, url, lines, args.every) for _ in range(args.repeat)]
                    browser.close()
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    every = sorted(x for run in runs for x in run)
    firsts = [run[0] for run in runs if run]
    if not args.json:
        for n, run in enumerate(runs, 1):
            ordered = sorted(run)
            print(
                f"run {n}: {len(run)} batches, first line {run[0]:.0f} ms; min {ordered[0]:.0f} "
                f"median {statistics.median(ordered):.0f} "
                f"p95 {ordered[int(len(ordered) * 0.95) - 1]:.0f} max {ordered[-1]:.0f} ms"
            )
    result = {
        "first_line_ms": round(statistics.median(firsts), 1),
        "p50_ms": round(statistics.median(every), 1),
        "p95_ms": round(every[int(len(every) * 0.95) - 1], 1),
        "max_ms": round(every[-1], 1),
        "lines": len(lines),
        "config": "scale-out (PostgreSQL, channels-redis, separate processes)",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
