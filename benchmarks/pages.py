"""Page benchmark (run by hand; needs Debian's chromium, no Docker): how long each page takes,
measured in a real browser against a real `manage.py serve --no-worker`, on a database the size
of a busy team's rather than an empty one.

The seed: one team of 8 people, 30 projects, 40 finished builds each (1,200 builds, 3 platforms
each), one build with a 5,000-line log and one with 143,961 lines, 300 ledger records. For each
page, visited --repeat times by a logged-in chromium (1280x800), from the browser's own
navigation timing:

- server: responseStart - requestStart (the portal's time to first byte, network is loopback);
- ready:  domContentLoadedEventEnd - startTime (what a person waits for before the page reads).

Prints a table and ends with one JSON line {"<page>": {"server_ms": median, "ready_ms": median}}.

    .venv/bin/python benchmarks/pages.py [--repeat 7] [--database-url postgres://...]

With --database-url the database must be empty (it is migrated and seeded here); the default is a
new SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "bench-password-1"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def seed() -> dict[str, str]:
    """The rows; answers the pages to visit (name -> path)."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from builds.models import Build, BuildPlatform, LogLine, ManifestRecord
    from portal.models import Membership, Project, Team

    users = get_user_model()
    team = Team.objects.create(slug="acme", name="Acme")
    admin = users.objects.create_user("bench", password=PASSWORD, is_staff=True)
    Membership.objects.create(user=admin, team=team, role=Membership.Role.ADMIN)
    for n in range(7):
        member = users.objects.create_user(f"dev{n}", password=PASSWORD)
        Membership.objects.create(user=member, team=team, role=Membership.Role.MEMBER)
    now = timezone.now()
    projects, builds, platforms = [], [], []
    for p in range(30):
        projects.append(
            Project(
                team=team,
                name=f"service-{p:02d}",
                git_url=f"https://git.example.com/acme/service-{p:02d}.git",
                ref="main",
                image=f"registry.example.com/acme/service-{p:02d}",
                platforms=PLATFORMS,
                language="go",
                options={},
                created_by=admin,
            )
        )
    Project.objects.bulk_create(projects)
    for project in projects:
        for b in range(40):
            at = now - timedelta(hours=40 - b, minutes=project.pk)
            failed = b % 7 == 3
            builds.append(
                Build(
                    project=project,
                    state=Build.State.FAILED if failed else Build.State.SUCCEEDED,
                    reason="./main.go:4:2: undefined: nosuchfunc" if failed else "",
                    ref="main",
                    commit=f"{b:040x}",
                    tags=[f"v1.{b}.0", "latest"],
                    platforms=PLATFORMS,
                    requested_by=admin,
                    created_at=at,
                    started_at=at,
                    finished_at=at + timedelta(seconds=95),
                    digest="" if failed else "sha256:" + f"{project.pk:032x}{b:032x}",
                )
            )
    Build.objects.bulk_create(builds)
    for build in builds:
        for platform in PLATFORMS:
            platforms.append(
                BuildPlatform(
                    build=build,
                    platform=platform,
                    state=BuildPlatform.State.FAILED
                    if not build.digest
                    else BuildPlatform.State.DONE,
                    done=8,
                    total=8,
                    digest=build.digest,
                    started_at=build.started_at,
                    finished_at=build.finished_at,
                )
            )
    BuildPlatform.objects.bulk_create(platforms)
    big = builds[-2]
    LogLine.objects.bulk_create(
        LogLine(
            build=big,
            seq=n,
            platform=PLATFORMS[n % 3],
            text=f"#{n % 40} [build {n % 8}/8] RUN go build -o /out/app ./... line {n}",
        )
        for n in range(5000)
    )
    # The size a new user's chatty build reached (issue 19): four steps of 400,000 short lines,
    # which BuildKit clipped to 143,961 stored lines.
    huge = builds[-3]
    LogLine.objects.bulk_create(
        (
            LogLine(build=huge, seq=n, platform=PLATFORMS[n % 3], text=f"#{n % 4 + 5} 1.{n} {n}")
            for n in range(1, 143_962)
        ),
        batch_size=5000,
    )
    records = [
        ManifestRecord(
            team=team,
            project=build.project,
            build=build,
            reference=f"{build.project.image}:{build.tags[0]}",
            digest=build.digest,
            platforms=dict.fromkeys(PLATFORMS, build.digest),
            pushed_by=admin,
            pushed_at=build.finished_at,
            source_url=build.project.git_url,
            source_ref="main",
            source_commit=build.commit,
        )
        for build in builds
        if build.digest
    ][:300]
    ManifestRecord.objects.bulk_create(records)
    project = projects[-1]
    return {
        "home": "/",
        "team": f"/teams/{team.slug}/",
        "project": f"/projects/{project.pk}/",
        "project-history": f"/projects/{project.pk}/history",
        "team-manifests": f"/teams/{team.slug}/manifests/",
        "build (5,000 log lines)": f"/builds/{big.pk}/",
        "build (143,961 log lines)": f"/builds/{huge.pk}/",
        "build (failed)": f"/builds/{builds[-5].pk}/",
        "manifest": f"/manifests/{records[-1].pk}/",
        "project-new": "/projects/new/",
        "tokens": "/tokens/",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/login/", timeout=2).close()
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"portal did not start:\n{log.read_text()}")
            time.sleep(0.2)


def measure(url: str, pages: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    timing = "() => { const t = performance.getEntriesByType('navigation')[0];" + (
        " return [t.responseStart - t.requestStart, t.domContentLoadedEventEnd - t.startTime]; }"
    )
    results: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/login/")
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        for name, path in pages.items():
            server, ready, size = [], [], 0
            for _ in range(repeat + 1):  # the first visit warms the server's caches
                response = page.goto(url + path, wait_until="domcontentloaded")
                if response is None or not response.ok:
                    sys.exit(f"{path}: {response and response.status}")
                s, r = page.evaluate(timing)
                size = len(response.body())
                server.append(s)
                ready.append(r)
            results[name] = {
                "server_ms": round(statistics.median(server[1:]), 1),
                "server_max_ms": round(max(server[1:]), 1),
                "ready_ms": round(statistics.median(ready[1:]), 1),
                "kb": round(size / 1024, 1),
            }
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        env = {**os.environ, "DATABASE_URL": database, "PORTAL_DEBUG": "false"}
        env.pop("REDIS_URL", None)
        os.environ.update(DATABASE_URL=database)
        os.environ.pop("REDIS_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env
        ).check_returncode()
        pages = seed()
        server, url = serve(env, Path(tmp) / "server.log")
        try:
            results = measure(url, pages, args.repeat)
        finally:
            server.terminate()
            server.wait(timeout=30)
    if not args.json:
        print(f"{'page':28} {'server ms':>10} {'(max)':>8} {'ready ms':>10} {'kB':>8}")
        for name, r in results.items():
            print(
                f"{name:28} {r['server_ms']:>10} {r['server_max_ms']:>8} {r['ready_ms']:>10} "
                f"{r['kb']:>8}"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
