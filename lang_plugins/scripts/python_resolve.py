"""Crossport's Python resolve step: what every target platform shares, done once.

The python plugin embeds this file in the Dockerfile it writes (a heredoc in the ``resolve``
stage). That stage runs on ``$BUILDPLATFORM`` and names no target argument, so BuildKit runs it
once however many platforms are built. ``argv[1]`` is the install mode (``requirements`` or
``pyproject``); nothing else a user typed reaches it.

It resolves the requirements (on the build platform, whose environment markers pip evaluates, as
``pip --platform`` does too) and sorts the pinned packages in two:
- pure Python (a ``none-any`` wheel, or an sdist that builds into one): installed here, once,
  into /pure, byte-compiled by the runtime's own Python version;
- compiled code: listed in /resolved/native.txt for the per-platform ``deps`` stage, which
  installs each target's own wheel (python_plan.py).

It is a plain file, not a module of the plugin: it must run on Python 3.9 with only the standard
library, and it must never contain the heredoc's end word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

mode = sys.argv[1]
PURE, RESOLVED = Path("/pure"), Path("/resolved")
PURE.mkdir()
RESOLVED.mkdir()
(RESOLVED / "native.txt").touch()


def pip(*args: str) -> bool:
    return subprocess.run([sys.executable, "-m", "pip", *args]).returncode == 0


def say(text: str) -> None:
    print(f"crossport: every platform: {text}", flush=True)
    with open(RESOLVED / "plan.txt", "a") as fh:
        fh.write(text + "\n")


def is_pure(wheel: str) -> bool:
    """A wheel file name's tags (name-version[-build]-python-abi-platform.whl) fit any platform."""
    return wheel.endswith(".whl") and wheel[: -len(".whl")].split("-")[-2:] == ["none", "any"]


def built_wheel(spec: str, n: int) -> str | None:
    """Build spec into a wheel here; its path if pure Python (fits every platform)."""
    out = Path(f"/tmp/built/{n}")
    if not pip("wheel", "--no-deps", "--quiet", f"--wheel-dir={out}", spec):
        return None
    wheels = sorted(str(w) for w in out.glob("*.whl"))
    return wheels[0] if wheels and is_pure(wheels[0]) else None


reqs: list[str] = []
project = ""
if mode == "pyproject":
    if not pip("wheel", "--no-deps", "--quiet", "--wheel-dir=/tmp/project", "."):
        sys.exit("crossport: building the project's own wheel failed (see above)")
    project = str(next(Path("/tmp/project").glob("*.whl")))
    reqs.append(project)
if Path("requirements.txt").is_file():
    reqs += ["-r", "requirements.txt"]
if not reqs:
    say("nothing to install (no requirements.txt)")
    sys.exit(0)
if not pip(
    "install", "--dry-run", "--ignore-installed", "--quiet", "--report=/tmp/report.json", *reqs
):
    sys.exit("crossport: pip could not resolve the requirements (see above)")

pure: list[str] = []
native: list[str] = []
for n, item in enumerate(json.loads(Path("/tmp/report.json").read_text())["install"]):
    name, info = item["metadata"]["name"], item["download_info"]
    url = info["url"]
    if not item.get("is_direct"):
        spec = f"{name}=={item['metadata']['version']}"
    elif "vcs_info" in info:
        vcs = info["vcs_info"]
        spec = f"{name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    else:
        spec = f"{name} @ {url}"
    if is_pure(url.rsplit("/", 1)[-1]):
        pure.append(spec)
    elif project and url == Path(project).as_uri():  # the project itself, with compiled code
        native.append("/src")
    elif url.endswith(".whl"):  # a wheel for the build platform: each target needs its own
        native.append(spec)
    elif (wheel := built_wheel(spec, n)) is not None:  # an sdist, a folder or a repository
        pure.append(wheel)
    else:
        native.append(spec)
if pure and not pip("install", "--target=/pure", "--no-deps", "--quiet", *pure):
    sys.exit("crossport: installing the pure-Python packages failed (see above)")
(RESOLVED / "native.txt").write_text("".join(spec + "\n" for spec in native))
say(
    f"{len(pure)} pure-Python packages installed once for all platforms; "
    f"{len(native)} with compiled code, installed per platform"
    + (": " + " ".join(native) if native else "")
)
