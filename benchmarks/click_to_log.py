"""Click to first log line (run by hand, as root, with the test stack up): what a person waits
for between pressing "Build and push" on the project page and the build's first log line on
the page that opens, in a real chromium, against a real portal with its real worker, building
the Go sample on the stack's engine.

The portal runs in the configuration of the environment (embedded without DATABASE_URL;
scale-out with DATABASE_URL and REDIS_URL: a database of its own and separate workers), as the
end-to-end tests start it (tests/e2e/conftest.py). Each repetition registers a new project (a
project runs one build at a time), clicks Build, times the first line, cancels the build and
waits for it to end (the worker is idle again).

    eval "$(scripts/teststack.sh env)"
    .venv/bin/python benchmarks/click_to_log.py [--repeat 5]

Ends with one JSON line {"click_to_page_ms": median, "click_to_first_line_ms": median, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]  # e2e conftest
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()  # the e2e helpers import the models (for their fixtures' types)
    from browser import CHROMIUM, CHROMIUM_ARGS
    from conftest import make_persona, running_portal
    from playwright.sync_api import sync_playwright

    from fakes import write_hello
    from stack import go_project, wait_finished

    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = root / "repos" / "hello"
        write_hello(repo)
        git = ["git", "-c", "user.name=B", "-c", "user.email=b@example.invalid", "-C", str(repo)]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "hello"], check=True)
        with running_portal(root / "data", root / "repos") as portal:
            persona = make_persona(portal, "bench", "bench")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(portal.url + "/login/")
                page.fill("input[name=username]", persona.username)
                page.fill("input[name=password]", persona.password)
                page.click("button[type=submit]")
                page.wait_for_url(portal.url + "/")
                for n in range(args.repeat):
                    project_id, _ = go_project(portal, persona, f"file://{repo}", f"click{n}")
                    page.goto(f"{portal.url}/projects/{project_id}/")
                    start = time.monotonic()
                    page.click("#build-button")
                    page.wait_for_url("**/builds/*/")
                    opened = time.monotonic()
                    page.wait_for_selector("#log .line", timeout=120_000)
                    first = time.monotonic()
                    samples.append(((opened - start) * 1000, (first - start) * 1000))
                    build = page.url.rstrip("/").rsplit("/", 1)[1]
                    portal.api("POST", f"/api/v1/builds/{build}/cancel", persona.token)
                    wait_finished(portal, persona.token, int(build), 120)  # the worker is free
                    shown, first_line = samples[-1]
                    print(f"run {n + 1}: page {shown:.0f} ms, first line {first_line:.0f} ms")
                browser.close()
    pages = [s[0] for s in samples]
    firsts = [s[1] for s in samples]
    print(
        json.dumps(
            {
                "click_to_page_ms": round(statistics.median(pages)),
                "click_to_first_line_ms": round(statistics.median(firsts)),
                "max_first_line_ms": round(max(firsts)),
                "runs": len(samples),
                "config": "scale-out" if os.environ.get("DATABASE_URL") else "embedded",
            }
        )
    )


if __name__ == "__main__":
    main()
