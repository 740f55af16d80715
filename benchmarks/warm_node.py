"""Warm on any node: a one-file change rebuilt on a node whose build cache holds nothing of
the project, with and without the project's registry layer cache (run by hand, as root, with
the test stack up).

The workload is a plugin's realistic-size sample (benchmarks/samples.py; Python by default:
Django and 300 modules) for linux/amd64, linux/arm64 and linux/arm/v7, through the portal's own
buildx runner with the cache flags the portal writes (builds.buildx, `cache_ref`):

1. cold build, exporting the registry cache (what the project's first build does);
2. warm node: a one-file change rebuilt on the same node, its build cache intact;
3. cold node with cache: the node's build cache pruned (`docker buildx prune -af`: a node
   that never built the project, or whose cache was pruned), another one-file change rebuilt
   with the registry cache;
4. cold node without cache: pruned again, the same change rebuilt with no cache at all.

The "cold" node keeps its base images (pruning the build cache does not remove images), as a
node that builds other projects on the same bases would. Targets: 3 <= 2 x 2, 3 <= 0.3 x 4.
Ends with one JSON line {"cold_node_with_cache_s": x, "warm_node_s": y, "cold_no_cache_s": z}.

    eval "$(scripts/teststack.sh env)"
    .venv/bin/python benchmarks/warm_node.py [--plugin python] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from crossbuild import ALL, REGISTRY, prune, render_sample, sample, timed_build

from builds.planner import cache_tag

# The file each plugin's one-file change touches, in its realistic-size sample.
CHANGED = {
    "python": "service/m0.py",
    "go": "handlers/h0.go",
    "java": "src/main/java/com/example/crossport/gen/C0.java",
    "static": "src/section0/page0.html",
}


def change(context: Path, key: str) -> None:
    path = context / CHANGED[key]
    marker = uuid.uuid4().hex
    comment = {"python": "#", "go": "//", "java": "//"}.get(key)
    text = path.read_text()
    path.write_text(f"{text}\n{comment} {marker}\n" if comment else text + f"<!-- {marker} -->")


def build(key: str, context: Path, dockerfile: Path, cache_ref: str) -> float:
    """One three-platform build on the node as its cache stands (the caller prunes it)."""
    return timed_build(key, "warm", dockerfile, context, ALL, cold=False, cache_ref=cache_ref)[0]


def bench(key: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        context = sample(key, "realistic", Path(work))
        dockerfile = render_sample(key, context, Path(work))
        # A repository of its own per run: no cache from an earlier run.
        cache = f"{REGISTRY}/bench/warm-{key}-{uuid.uuid4().hex[:8]}:{cache_tag(ALL)}"
        prune()
        result = {"cold_exporting_cache_s": build(key, context, dockerfile, cache)}
        change(context, key)
        result["warm_node_s"] = build(key, context, dockerfile, cache)
        change(context, key)
        prune()
        result["cold_node_with_cache_s"] = build(key, context, dockerfile, cache)
        prune()
        result["cold_no_cache_s"] = build(key, context, dockerfile, "")
    print(f"{key}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugin", choices=sorted(CHANGED), default="python")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    runs = [bench(args.plugin) for _ in range(args.repeat)]
    result = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    warm, cold = result["warm_node_s"], result["cold_no_cache_s"]
    with_cache = result["cold_node_with_cache_s"]
    print(
        f"{args.plugin}: cold node with the registry cache {with_cache:.1f} s = "
        f"{with_cache / warm:.2f} x the warm node (target <= 2) and "
        f"{with_cache / cold:.2f} x a cold build without cache (target <= 0.3); "
        f"the first build, exporting the cache: {result['cold_exporting_cache_s']:.1f} s"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "cold_node_with_cache_s": with_cache,
                    "warm_node_s": warm,
                    "cold_no_cache_s": cold,
                }
            )
        )


if __name__ == "__main__":
    sys.exit(main())
