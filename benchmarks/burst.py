"""A burst of builds (run by hand, as root, with the test stack up, in the scale-out
configuration): 50 builds submitted at once by 5 teams (10 projects each, the static-site
sample for linux/amd64 and linux/arm64) to a portal with two build workers on PostgreSQL and
Redis, PORTAL_TEAM_MAX_BUILDS=1. When the first builds have finished, one worker is killed with
SIGKILL mid-build and a new one started, as a crashed machine would be replaced.

Measured: that every build ends (succeeded, or failed with a clear reason: the killed worker's
build fails "worker lost" once its lease expires), that none ran twice (two starts in its log)
and none is lost (still queued or running at the end); fairness (the teams of the first five
builds to start: with the fair queue, all five); the API's time while the burst runs (a client
reading builds and the project list the whole time); and the wall time.

    eval "$(scripts/teststack.sh env)"
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
      .venv/bin/python benchmarks/burst.py [--builds 50] [--teams 5]

Ends with one JSON line {"builds": 50, "finished": 50, "ran_twice": 0, "lost": 0, "wall_s": s,
...}; exits 1 when a build is lost or ran twice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()  # the e2e helpers import the portal's models (this process touches no database)

from e2e.conftest import commit_all, make_persona, running_portal  # noqa: E402

from stack import unique_image  # noqa: E402

FINISHED = ("succeeded", "failed", "cancelled")
PLATFORMS = ["linux/amd64", "linux/arm64"]


def static_repo(root: Path) -> str:
    work = root / "static-src"
    shutil.copytree(ROOT / "tests" / "e2e" / "samples" / "static", work)
    commit_all(work, "static sample")
    return f"file://{work}"


def api_load(portal: Any, token: str, ids: list[int], stop: threading.Event) -> list[float]:
    """Read builds and the project list until `stop`, as dashboards and CI jobs would."""
    timings = []
    n = 0
    while not stop.is_set():
        path = "/api/v1/projects" if n % 5 == 0 else f"/api/v1/builds/{ids[n % len(ids)]}"
        request = urllib.request.Request(
            portal.url + path, headers={"Authorization": f"Bearer {token}"}
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        timings.append((time.monotonic() - started) * 1000)
        n += 1
        time.sleep(0.05)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=50)
    parser.add_argument("--teams", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("burst.py runs in the scale-out configuration: set DATABASE_URL and REDIS_URL")
    per_team = args.builds // args.teams
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = static_repo(root)
        extra = {"PORTAL_TEAM_MAX_BUILDS": "1"}  # file:// repositories: below `root`
        with running_portal(root / "portal", root, extra) as portal:
            people = [make_persona(portal, f"burst{t}", f"burst{t}") for t in range(args.teams)]
            status, detected = portal.api(
                "POST",
                "/api/v1/detect",
                people[0].token,
                {"team": people[0].team, "git_url": repo, "ref": "main"},
            )
            assert status == 200 and detected["language"] == "static", detected
            jobs = []  # (persona, project id)
            for persona in people:
                for p in range(per_team):
                    status, project = portal.api(
                        "POST",
                        "/api/v1/projects",
                        persona.token,
                        {
                            "team": persona.team,
                            "name": f"site-{p}",
                            "language": "static",
                            "git_url": repo,
                            "image": unique_image(f"burst-{persona.team}-{p}"),
                            "platforms": PLATFORMS,
                            "options": detected["options"],
                        },
                    )
                    assert status == 201, project
                    jobs.append((persona, project["id"]))

            def submit(job: tuple[Any, int]) -> tuple[Any, int]:
                persona, project_id = job
                status, build = portal.api(
                    "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {}
                )
                assert status == 201, build
                return persona, build["id"]

            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=10) as pool:
                builds = list(pool.map(submit, jobs))
            stop = threading.Event()
            timings: list[float] = []
            loader = threading.Thread(
                target=lambda: timings.extend(
                    api_load(
                        portal, people[0].token, [b for p, b in builds if p is people[0]], stop
                    )
                )
            )
            loader.start()
            killed = False
            state: dict[int, dict[str, Any]] = {}
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                for persona, pk in builds:
                    if state.get(pk, {}).get("state") not in FINISHED:
                        state[pk] = portal.api("GET", f"/api/v1/builds/{pk}", persona.token)[1]
                done = sum(s["state"] in FINISHED for s in state.values())
                if not killed and done >= 5:
                    victim = portal.workers[0]
                    victim.kill()  # SIGKILL, mid-build
                    victim.wait()
                    portal.workers.remove(victim)
                    portal.start_worker()
                    killed = True
                    print(f"killed a worker after {done} builds finished", flush=True)
                if done == len(builds):
                    break
                time.sleep(2)
            wall = time.monotonic() - started
            stop.set()
            loader.join()
            logs = {
                pk: portal.api("GET", f"/api/v1/builds/{pk}/log", persona.token)[1]["lines"]
                for persona, pk in builds
            }
    ran_twice = sum(
        sum(line["text"].startswith(f"Crossport: build {pk} of ") for line in lines) > 1
        for pk, lines in logs.items()
    )
    by_start = sorted(
        (s for s in state.values() if s.get("started_at")), key=lambda s: s["started_at"]
    )
    team_of = {pk: persona.team for persona, pk in builds}
    first_teams = {team_of[s["id"]] for s in by_start[: args.teams]}
    states = [s["state"] for s in state.values()]
    failures = sorted({s["reason"] for s in state.values() if s["state"] == "failed"})
    timings.sort()
    result = {
        "builds": len(builds),
        "finished": sum(s in FINISHED for s in states),
        "succeeded": states.count("succeeded"),
        "failed": states.count("failed"),
        "ran_twice": ran_twice,
        "lost": sum(s not in FINISHED for s in states),
        "wall_s": round(wall, 1),
        "teams_among_first_starts": len(first_teams),
        "api_requests": len(timings),
        "api_p50_ms": round(statistics.median(timings), 1) if timings else None,
        "api_p95_ms": round(timings[int(len(timings) * 0.95) - 1], 1) if timings else None,
    }
    if not args.json:
        print("failure reasons:", failures or "none")
    print(json.dumps(result))
    sys.exit(1 if result["lost"] or result["ran_twice"] else 0)


if __name__ == "__main__":
    main()
