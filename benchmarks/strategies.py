"""Build strategies benchmark (run by hand, as root, with the test stack up).

The Go sample (tests/e2e/samples/go) for linux/amd64, linux/arm64 and linux/arm/v7, through the
portal's own worker (claim, plan, buildx runs, merge, verify, ledger), measured side by side in
one run, the build cache of every engine pruned before every build:

- emulate: one node (the local engine) builds all platforms in one buildx run;
- native:  one run per platform, spread over two nodes (the local engine and a second engine
           started here on 127.0.0.1 with mutual TLS, as in tests/e2e/test_fleet.py), merged
           with `docker buildx imagetools create`;
- auto:    the planner's choice on the same two nodes (platforms grouped per node: two runs);
- builder: the article's third way, a buildx builder `bench` of the same two engines (the local
           one serving linux/amd64, the second linux/arm64 and linux/arm/v7), one `buildx build`
           that BuildKit spreads over them (PORTAL_BUILDKIT_IMAGE: the stack's image).

Both engines run on this one 2-core machine, so native here shows the cost of the plan
(more runs, a merge) rather than the gain of more hardware: with each node on its own machine,
the runs would not compete for the same cores.

    eval "$(scripts/teststack.sh env)"
    .venv/bin/python benchmarks/strategies.py [--repeat 3]

Writes benchmarks/out/strategies.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(tempfile.mkdtemp(prefix="crossport-bench-"))
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.update(
    DJANGO_SETTINGS_MODULE="portal.settings",
    PORTAL_DATA_DIR=str(DATA),
    PORTAL_GIT_FILE_ROOTS=str(DATA),
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from builds import builders  # noqa: E402
from builds.dockerhost import validate_tls  # noqa: E402
from builds.models import Build, BuilderNode, BuildxBuilder  # noqa: E402
from builds.nodes import check_node  # noqa: E402
from builds.services import queue_build  # noqa: E402
from builds.worker import work_once  # noqa: E402
from portal.models import Project, Team  # noqa: E402
from stack import SecondEngine  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
REGISTRY = os.environ.get("PORTAL_TEST_REGISTRY", "localhost:5000")


def git_repo(source: Path) -> str:
    work = DATA / "go-src"
    shutil.copytree(source, work)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "sample"], check=True)
    return f"file://{work}"


BUILDER = "bench"


def prune(second: SecondEngine) -> None:
    subprocess.run(["docker", "buildx", "prune", "-af"], capture_output=True, check=True)
    second.docker("buildx", "prune", "-af")
    if BuildxBuilder.objects.filter(name=BUILDER).exists():
        env = {**os.environ, "DOCKER_CONFIG": str(builders.config_dir())}
        subprocess.run(
            ["docker", "buildx", "prune", "-af", f"--builder={BUILDER}"],
            capture_output=True,
            check=True,
            env=env,
        )


def timed(project: Project, strategy: str, second: SecondEngine) -> tuple[float, Build]:
    prune(second)
    build = queue_build(project, None, strategy=strategy)
    started = time.monotonic()
    ran = work_once("bench")
    elapsed = time.monotonic() - started
    assert ran is not None and ran.pk == build.pk
    build.refresh_from_db()
    if build.state != Build.State.SUCCEEDED:
        raise SystemExit(f"{strategy} build failed: {build.reason}")
    return elapsed, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    second = SecondEngine(DATA / "second")
    second.start()
    try:
        local = BuilderNode.objects.create(
            name="local", endpoint=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        )
        remote = BuilderNode(name="second", endpoint=second.endpoint)
        remote.set_tls(*validate_tls(second.client_tls))
        remote.save()
        for node in (local, remote):
            check_node(node)
            assert node.reachable, node.last_error
            BuilderNode.objects.filter(pk=node.pk).update(last_checked_at=timezone.now())
        team = Team.objects.create(slug="bench", name="bench")
        project = Project.objects.create(
            team=team,
            name="go",
            git_url=git_repo(ROOT / "tests" / "e2e" / "samples" / "go"),
            ref="main",
            image=f"{REGISTRY}/bench/strategies-{uuid.uuid4().hex[:8]}",
            platforms=PLATFORMS,
            language="go",
            options={},
        )
        made = builders.create(
            BUILDER, [(local, ["linux/amd64"]), (remote, ["linux/arm64", "linux/arm/v7"])]
        )
        booted = builders.bootstrap(BuildxBuilder.objects.get(name=BUILDER)) if made.ok else made
        if not booted.ok:
            raise SystemExit(f"builder {BUILDER}: {made.error or booted.error}")
        times: dict[str, list[float]] = {
            "emulate": [],
            "native": [],
            "auto": [],
            f"builder:{BUILDER}": [],
        }
        layout: dict[str, str] = {}
        for _ in range(args.repeat):
            for strategy in times:  # alternated, so drift hits both alike
                seconds, build = timed(project, strategy, second)
                times[strategy].append(seconds)
                layout[strategy] = ", ".join(
                    f"{p.platform} on {p.node.name if p.node else '?'} ({p.seconds} s)"
                    for p in build.platform_states.select_related("node")
                )
                print(f"{strategy}: {seconds:.1f} s ({layout[strategy]})", flush=True)
    finally:
        if builder := BuildxBuilder.objects.filter(name=BUILDER).first():
            builders.remove(builder)
        second.stop()
        shutil.rmtree(DATA, ignore_errors=True)
    emulate, native, builder = (
        statistics.median(times[s]) for s in ("emulate", "native", f"builder:{BUILDER}")
    )
    OUT.mkdir(exist_ok=True)
    table = [
        f"| strategy | median of {args.repeat} (s) | runs (s) | last plan |",
        "|---|---|---|---|",
        *(
            f"| {s} | {statistics.median(t):.1f} | {', '.join(f'{x:.1f}' for x in t)} | "
            f"{layout[s]} |"
            for s, t in times.items()
        ),
        "",
        f"native / emulate: {native / emulate:.2f}x, builder / emulate: {builder / emulate:.2f}x "
        f"(both engines share this machine's {os.cpu_count()} cores)",
    ]
    (OUT / "strategies.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
