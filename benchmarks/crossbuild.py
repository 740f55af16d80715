"""Cross-building benchmark (run by hand, as root, with the test stack up).

For each plugin's sample app (tests/e2e/samples/<key>), measured side by side in one run, cache
off (build cache pruned before every build, `--no-cache`), pushed to the local registry:

- multi:  the portal's build: the plugin's Dockerfile for linux/amd64, linux/arm64, linux/arm/v7,
          run through the portal's own buildx runner (builds.buildx);
- single: the same Dockerfile for linux/amd64 only (the native baseline);
- warm:   multi again right after, with a one-file source change: layer cache on (so the
          source change re-runs the build steps) and the compiler/package cache mounts warm,
          the steady state of a team that builds every commit. (`--no-cache` also empties the
          cache mounts on this engine, so the cold runs get no help from them.)
- naive:  benchmarks/naive/<key>.Dockerfile, which compiles/installs in the per-platform stage,
          i.e. under QEMU for the arm platforms, for the same three platforms.

Also, from the same run:
- go floor: what three Go compiles must cost at least, `single + 2 x compile`, where compile is
          the single-platform `go build` steps' own time (the imported standard library, then
          the program), read from buildx's rawjson vertex timestamps (three compiles cannot
          share work; everything else can be done once);
- portal overhead: the Go sample through a running portal (API build of a git commit, from
          the build's created_at to its finished_at: clone, guardrails, buildx, arch checks,
          ledger) against `docker buildx build` of the same Dockerfile by hand, both cold, both
          pushing once to the local registry (`--output=type=image,push=true`, as the portal
          does on this engine; `--push` pushes twice here, see builds/buildx.py).

`--size realistic` builds each sample grown to the size of a small real service
(benchmarks/samples.py) instead of the hello-world, so the fixed costs weigh what they weigh
in a real build.

Writes benchmarks/out/crossbuild[-realistic].md (table) and .png (chart). With --json, ends
with one JSON line of ratios against native amd64 single-platform:
{"go": r, "go_floor": f, "java": r, "python": r, "static": r, "portal_overhead": o}
(plus "size": "realistic" for that size).

    eval "$(scripts/teststack.sh env)"
    .venv/bin/python benchmarks/crossbuild.py [--plugins go,java,python,static] [--repeat 1] \
        [--size small|realistic] [--json] [--no-portal]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402
import docker  # noqa: E402

django.setup()

import samples  # noqa: E402  (benchmarks/samples.py, beside this script)

import lang_plugins  # noqa: E402
from builds import buildx  # noqa: E402
from builds.buildruns import REGISTRY_5XX  # noqa: E402
from builds.nodes import image_store  # noqa: E402
from builds.rawjson import StreamDecoder  # noqa: E402

SAMPLES = ROOT / "tests" / "e2e" / "samples"
# As the worker pushes on this engine (see builds.buildx).
PUSH_ONCE = image_store(docker.from_env().info()) == "containerd"
NAIVE = ROOT / "benchmarks" / "naive"
OUT = ROOT / "benchmarks" / "out"
ALL = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
MIRROR = os.environ.get("PORTAL_BASE_IMAGE_MIRROR", "localhost:5000/library")
REGISTRY = os.environ.get("PORTAL_TEST_REGISTRY", "localhost:5000")
# Options a sample needs to build offline (internal mirrors the stack provides).
# Platforms of the naive build: Maven under 32-bit ARM emulation cannot list directories on
# this 64-bit host (java.io.File.list() sees nothing; ClassNotFoundException: MavenCli), so the
# naive Java build covers amd64 and arm64 only, which flatters it.
NAIVE_PLATFORMS = {"java": ALL[:2]}
SAMPLE_OPTIONS: dict[str, dict[str, str]] = {
    "java": {"maven_mirror": "file:///usr/share/maven-repo"},
    "python": {"index_url": os.environ.get("PORTAL_TEST_PYPI", "http://127.0.0.1:3141/simple/")},
}


def sample(key: str, size: str, work: Path) -> Path:
    """The sample app's folder: the hello-world itself, or a grown copy of it in `work`."""
    return SAMPLES / key if size == "small" else samples.grow(key, work / f"{key}-{size}")


def render_sample(key: str, context: Path, work: Path) -> Path:
    """The plugin's Dockerfile (and .dockerignore) for the sample app in `context`, written into
    `work`, as when a team registers it: the detected options, plus the offline mirrors."""
    plugin = lang_plugins.get_plugin(key)
    detection = plugin.detect(context)
    detected = detection.options if detection else {}
    options = plugin.clean_options({**detected, **SAMPLE_OPTIONS.get(key, {})})
    rendered = plugin.render(options, mirror=MIRROR)
    dockerfile = work / "Dockerfile"
    dockerfile.write_text(rendered.dockerfile)
    (work / "Dockerfile.dockerignore").write_text(rendered.dockerignore)
    return dockerfile


def run_spec(spec: buildx.BuildSpec) -> tuple[float, int, bytes]:
    """One run through the portal's buildx runner: (seconds, exit code, output)."""
    output: list[bytes] = []
    started = time.monotonic()
    [code] = buildx.run([spec], lambda _, chunk: output.append(chunk), lambda: False, grace=10)
    return time.monotonic() - started, code, b"".join(output)


def prune() -> None:
    subprocess.run(["docker", "buildx", "prune", "-af"], capture_output=True, check=True)


def step_seconds(output: bytes) -> dict[str, float]:
    """Each BuildKit vertex's own time (completed - started), by vertex name, from a rawjson
    stream."""
    times: dict[str, dict[str, str]] = {}
    for item in StreamDecoder().feed_bytes(output):
        if isinstance(item, dict):
            for vertex in item.get("vertexes") or []:
                seen = times.setdefault(vertex["digest"], {})
                seen.update({k: vertex[k] for k in ("name", "started", "completed") if k in vertex})
    return {
        v["name"]: (
            datetime.fromisoformat(v["completed"]) - datetime.fromisoformat(v["started"])
        ).total_seconds()
        for v in times.values()
        if {"name", "started", "completed"} <= v.keys()
    }


def compile_seconds(output: bytes) -> float:
    """The Go compile steps' time in a single-platform build's output: the standard library
    packages the program imports, then the program (the plugin compiles them in two steps)."""
    steps = [t for name, t in step_seconds(output).items() if "go build" in name]
    if not 1 <= len(steps) <= 2:
        raise SystemExit(f"expected one or two `go build` steps in the single run, saw {steps}")
    return sum(steps)


def timed_build(
    key: str,
    variant: str,
    dockerfile: Path,
    context: Path,
    platforms: list[str],
    cold: bool = True,
    cache_ref: str = "",
) -> tuple[float, bytes]:
    """One build through the portal's buildx runner, pushed; cold: the build cache pruned
    first and `--no-cache`; cache_ref: the registry layer cache it reads and writes."""
    if cold:
        prune()
    with tempfile.TemporaryDirectory() as work:
        spec = buildx.BuildSpec(
            context=context,
            dockerfile=dockerfile,
            platforms=platforms,
            # A new tag every time: re-pointing a tag races in the filesystem registry.
            tags=[f"{REGISTRY}/bench/{key}:{variant}-{uuid.uuid4().hex[:8]}"],
            metadata_file=Path(work) / "metadata.json",
            network=os.environ.get("PORTAL_BUILD_NETWORK", "host"),
            no_cache=cold,
            push_once=PUSH_ONCE,
            cache_ref=cache_ref,
        )
        for _attempt in range(3):
            elapsed, code, output = run_spec(spec)
            if code == 0 or not REGISTRY_5XX.search(output[-4000:].decode(errors="replace")):
                break
            # The local registry's push race (see builds.worker): time the clean attempt.
            print(
                f"  {key}/{variant}: registry 500 during the push, again (cold={cold})", flush=True
            )
            if cold:
                prune()
    if code != 0:
        tail = output[-3000:].decode(errors="replace")
        raise SystemExit(f"{key}/{variant} failed ({code}):\n{tail}")
    return elapsed, output


def bench(key: str, repeat: int, size: str, naive: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        context = sample(key, size, Path(work))
        dockerfile = render_sample(key, context, Path(work))
        runs: dict[str, list[float]] = {"multi": [], "warm": [], "single": []}
        if naive:
            runs["naive"] = []
        if key == "go":
            runs["floor"] = []
        for _ in range(repeat):
            runs["multi"].append(timed_build(key, "multi", dockerfile, context, ALL)[0])
            # Steady state: a new commit on a warm builder.
            with tempfile.TemporaryDirectory() as changed:
                shutil.copytree(context, changed, dirs_exist_ok=True)
                (Path(changed) / "BENCH_CHANGE").write_text(uuid.uuid4().hex)
                runs["warm"].append(
                    timed_build(key, "warm", dockerfile, Path(changed), ALL, cold=False)[0]
                )
            single, output = timed_build(key, "single", dockerfile, context, ALL[:1])
            runs["single"].append(single)
            if key == "go":
                runs["floor"].append(single + 2 * compile_seconds(output))
            if not naive:
                continue
            runs["naive"].append(
                timed_build(
                    key,
                    "naive",
                    NAIVE / f"{key}.Dockerfile",
                    context,
                    NAIVE_PLATFORMS.get(key, ALL),
                )[0]
            )
    result = {variant: statistics.median(times) for variant, times in runs.items()}
    print(f"{key}: " + ", ".join(f"{v} {t:.1f}s" for v, t in result.items()), flush=True)
    return result


def portal_overhead(repeat: int, size: str) -> dict[str, float]:
    """The Go sample through a running portal against the same Dockerfile by hand."""
    sys.path.insert(0, str(ROOT / "tests"))
    from e2e.conftest import commit_all, make_persona, running_portal

    runs: dict[str, list[float]] = {"by_hand": [], "portal": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "go-src"
        shutil.copytree(sample("go", size, root), source)
        commit_all(source, "go sample")
        dockerfile = render_sample("go", source, root)
        with running_portal(root / "portal", root) as portal:
            persona = make_persona(portal, "bench", "bench")
            status, detected = portal.api(
                "POST",
                "/api/v1/detect",
                persona.token,
                {"team": persona.team, "git_url": f"file://{source}", "ref": "main"},
            )
            assert status == 200, detected
            status, project = portal.api(
                "POST",
                "/api/v1/projects",
                persona.token,
                {
                    "team": persona.team,
                    "name": "go-bench",
                    "language": "go",
                    "git_url": f"file://{source}",
                    "image": f"{REGISTRY}/bench/go-portal",
                    "platforms": ALL,
                    "options": detected["options"],
                    # What the command by hand does: no registry layer cache to write.
                    "registry_cache": False,
                },
            )
            assert status == 201, project
            for _ in range(repeat):
                runs["by_hand"].append(timed_build("go", "by-hand", dockerfile, source, ALL)[0])
                prune()
                runs["portal"].append(portal_build(portal, persona, project["id"]))
    result = {variant: statistics.median(times) for variant, times in runs.items()}
    print(
        f"portal overhead (go): by hand {result['by_hand']:.1f}s, portal {result['portal']:.1f}s",
        flush=True,
    )
    return result


def portal_build(portal: Any, persona: Any, project: int) -> float:
    # One node, one buildx run for the three platforms: what the command by hand does.
    status, build = portal.api(
        "POST", f"/api/v1/projects/{project}/builds", persona.token, {"strategy": "emulate"}
    )
    assert status == 201, build
    deadline = time.monotonic() + 1800
    while build["state"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SystemExit(f"portal build {build['id']} did not finish")
        time.sleep(0.5)
        build = portal.api("GET", f"/api/v1/builds/{build['id']}", persona.token)[1]
    if build["state"] != "succeeded":
        raise SystemExit(f"portal build {build['id']} {build['state']}: {build['reason']}")
    finished = datetime.fromisoformat(build["finished_at"])
    return (finished - datetime.fromisoformat(build["created_at"])).total_seconds()


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def ratio(value: float | None, base: float) -> str:
    return "-" if value is None else f"{value / base:.2f}x"


def write_report(
    results: dict[str, dict[str, float]],
    overhead: dict[str, float] | None,
    repeat: int,
    size: str,
) -> None:
    OUT.mkdir(exist_ok=True)
    name = "crossbuild" if size == "small" else f"crossbuild-{size}"
    lines = [
        f"# Cross-building benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"{size} samples, median of {repeat}, cache off)",
        "",
        "| plugin | multi-arch (portal) | amd64 only | naive (QEMU) "
        "| multi / single | naive / multi | multi after a source change, warm |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, r in results.items():
        lines.append(
            f"| {key} | {r['multi']:.1f} s | {r['single']:.1f} s | {seconds(r.get('naive'))} | "
            f"{r['multi'] / r['single']:.2f}x | {ratio(r.get('naive'), r['multi'])} | "
            f"{r['warm']:.1f} s |"
        )
    if "floor" in results.get("go", {}):
        go = results["go"]
        lines += [
            "",
            f"Go floor (amd64 only + 2 x its compile step): {go['floor']:.1f} s; "
            f"3 platforms / floor: {go['multi'] / go['floor']:.2f}x",
        ]
    if overhead:
        lines += [
            "",
            f"Portal overhead (go, 3 platforms): by hand {overhead['by_hand']:.1f} s, "
            f"through the portal {overhead['portal']:.1f} s: "
            f"{overhead['portal'] / overhead['by_hand']:.2f}x",
        ]
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install matplotlib)")
        return
    keys = list(results)
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(7.0, 1.8 + 1.6 * len(keys)), 4.2))
    for i, (variant, label) in enumerate(
        [
            ("single", "amd64 only"),
            ("multi", "3 platforms, portal"),
            ("naive", "3 platforms, naive QEMU"),
        ]
    ):
        ax.bar(
            [k + (i - 1) * width for k in range(len(keys))],
            [results[k].get(variant, 0.0) for k in keys],  # no naive run: no bar
            width,
            label=label,
        )
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylabel("wall time (s)")
    ax.set_title("Wall time per build, cache off (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=120)
    print(f"chart: {OUT / f'{name}.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--plugins", default=",".join(p.name for p in sorted(SAMPLES.iterdir()) if p.is_dir())
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--size",
        choices=("small", "realistic"),
        default="small",
        help="the hello-world samples, or grown to a small real service's size (samples.py)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the ratios")
    parser.add_argument("--no-portal", action="store_true", help="skip the portal overhead measure")
    parser.add_argument(
        "--no-naive", action="store_true", help="skip the naive (all under QEMU) builds"
    )
    args = parser.parse_args()
    results = {
        key: bench(key, args.repeat, args.size, naive=not args.no_naive)
        for key in args.plugins.split(",")
        if key
    }
    overhead = None if args.no_portal else portal_overhead(args.repeat, args.size)
    write_report(results, overhead, args.repeat, args.size)
    if args.json:
        ratios: dict[str, float | str | None] = {
            key: round(r["multi"] / r["single"], 2) for key, r in results.items()
        }
        if "go" in results:
            ratios["go_floor"] = round(results["go"]["floor"] / results["go"]["single"], 2)
        if overhead:
            ratios["portal_overhead"] = round(overhead["portal"] / overhead["by_hand"], 2)
        if args.size != "small":
            ratios["size"] = args.size
        print(json.dumps(ratios))


if __name__ == "__main__":
    main()
