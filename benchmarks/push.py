"""Push benchmark (run by hand, as root, with the test stack up): `--push` against push-once.

The Go sample (tests/e2e/samples/go) for linux/amd64, linux/arm64 and linux/arm/v7, already
built once, so every run is export and push only, to two new tags in the local registry, through
the portal's own buildx runner (builds.buildx). The two ways alternate in one run:

- push:  `--push`. On an engine that keeps its images in containerd, BuildKit pushes, then
         buildx 0.13 pushes every tag again through the engine, one manifest PUT per platform
         and attestation to the tag itself;
- once:  `--output=type=image,push=` (BuildSpec.push_once): BuildKit's push only.

For each: median wall time, and how many runs the registry failed with a 5xx. Nothing is
retried here (the worker retries such a run; this counts how often it would have to).

    eval "$(scripts/teststack.sh env)"
    .venv/bin/python benchmarks/push.py [--repeat 20]

Writes benchmarks/out/push.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from crossbuild import ALL, OUT, REGISTRY, REGISTRY_5XX, SAMPLES, buildx, render_sample, run_spec


def push(dockerfile: Path, once: bool) -> tuple[float, bool, str]:
    """One cached build and push to two new tags: (seconds, succeeded, error tail)."""
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as work:
        spec = buildx.BuildSpec(
            context=SAMPLES / "go",
            dockerfile=dockerfile,
            platforms=ALL,
            tags=[f"{REGISTRY}/bench/push:{tag}", f"{REGISTRY}/bench/push:{tag}-b"],
            metadata_file=Path(work) / "metadata.json",
            network=os.environ.get("PORTAL_BUILD_NETWORK", "host"),
            push_once=once,
        )
        elapsed, code, output = run_spec(spec)
    return elapsed, code == 0, output[-3000:].decode(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        dockerfile = render_sample("go", Path(work))
        push(dockerfile, once=True)  # build once: what follows is export and push
        times: dict[str, list[float]] = {"push": [], "once": []}
        failed = {"push": 0, "once": 0}
        for _ in range(args.repeat):
            for way in ("push", "once"):
                seconds, ok, tail = push(dockerfile, once=way == "once")
                if not ok and not REGISTRY_5XX.search(tail):
                    raise SystemExit(f"{way} failed, not on the registry:\n{tail}")
                failed[way] += not ok
                times[way].append(seconds)
    median = {way: statistics.median(t) for way, t in times.items()}
    lines = [
        f"# Push benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"{args.repeat} runs each, alternating; Go sample, 3 platforms, cached, 2 tags)",
        "",
        "| way | median | fastest | slowest | registry 5xx |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for way, label in (("push", "`--push`"), ("once", "`--output=type=image,push=`")):
        lines.append(
            f"| {label} | {median[way]:.2f} s | {min(times[way]):.2f} s | "
            f"{max(times[way]):.2f} s | {failed[way]} of {args.repeat} |"
        )
    lines += ["", f"push-once / push: {median['once'] / median['push']:.2f}x"]
    OUT.mkdir(exist_ok=True)
    (OUT / "push.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
