"""Crossport's Python build plan: install the target platform's wheels on the build platform.

The python plugin embeds this file in the Dockerfile it writes (a heredoc in the ``deps`` stage),
so it runs with the build stage's Python, which is the runtime's version, once per target platform,
on ``$BUILDPLATFORM``. ``argv[1]`` is the install mode (``requirements`` or ``pyproject``); nothing
else a user typed reaches it. It writes the wheels to /install and the plan to /plan: plan.txt (what
it decided, also printed) and emulated.txt (packages left to the fallback stage under emulation).

It is a plain file, not a module of the plugin: it must run on Python 3.9 with only the standard
library, and it must never contain the heredoc's end word.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

mode, target = sys.argv[1], os.environ.get("TARGETPLATFORM", "?")
arch = {"amd64": "x86_64", "arm64": "aarch64", "armv7": "armv7l"}.get(
    os.environ.get("TARGETARCH", "") + os.environ.get("TARGETVARIANT", "")
)
if arch is None:
    sys.exit(f"crossport: no manylinux wheels exist for {target}")
# The slim runtimes are Debian with glibc >= 2.36. pip wants every accepted tag spelled out;
# manylinux2014 also admits manylinux1/2010 wheels on x86_64.
tags = [f"manylinux_2_{m}_{arch}" for m in range(36, 16, -1)]
tags += [f"manylinux2014_{arch}", f"linux_{arch}"]
TARGET = [
    "--only-binary=:all:",
    "--implementation=cp",
    "--python-version={}.{}".format(*sys.version_info[:2]),
    *("--platform=" + t for t in tags),
]
OUT, PLAN_DIR = Path("/install"), Path("/plan")
OUT.mkdir()
PLAN_DIR.mkdir()


def pip(*args: str, quiet: bool = False) -> bool:
    run = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    return run.returncode == 0


def say(text: str) -> None:
    print(f"crossport: {target}: {text}", flush=True)
    with open(PLAN_DIR / "plan.txt", "a") as fh:
        fh.write(text + "\n")


def built_wheel(spec: str, n: int) -> Path | None:
    """Build spec into a wheel here; its path if pure Python (fits every platform)."""
    out = Path(f"/tmp/built/{n}")
    if not pip("wheel", "--no-deps", f"--wheel-dir={out}", spec):
        return None
    wheels = sorted(out.glob("*.whl"))
    return wheels[0] if wheels and wheels[0].name.endswith("-none-any.whl") else None


reqs: list[str] = []
project: Path | None = None
if mode == "pyproject":
    if not pip("wheel", "--no-deps", "--wheel-dir=/tmp/project", "."):
        sys.exit("crossport: building the project's own wheel failed (see above)")
    project = next(Path("/tmp/project").glob("*.whl"))
    reqs.append(str(project))
if Path("requirements.txt").is_file():
    reqs += ["-r", "requirements.txt"]
(PLAN_DIR / "emulated.txt").touch()
if not reqs:
    say("nothing to install (no requirements.txt)")
    sys.exit(0)
if pip("install", f"--target={OUT}", *TARGET, *reqs):
    say(f"every package is a wheel for {arch}; nothing is installed under emulation")
    sys.exit(0)

say(f"some packages have no {arch} wheel (pip's errors above): planning package by package")
shutil.rmtree(OUT)
OUT.mkdir()
# Resolve on the build platform (environment markers are evaluated here, as pip --platform
# does too), then look for a target wheel of each pinned package.
if not pip(
    "install", "--dry-run", "--ignore-installed", "--quiet", "--report=/tmp/report.json", *reqs
):
    sys.exit("crossport: pip could not resolve the requirements (see above)")
wheels: list[str] = []
emulated: list[str] = []
for n, item in enumerate(json.loads(Path("/tmp/report.json").read_text())["install"]):
    name, info = item["metadata"]["name"], item["download_info"]
    if not item.get("is_direct"):
        spec = f"{name}=={item['metadata']['version']}"
    elif "vcs_info" in info:
        vcs = info["vcs_info"]
        spec = f"{name} @ {vcs['vcs']}+{info['url']}@{vcs['commit_id']}"
    else:
        spec = f"{name} @ {info['url']}"
    # A local folder "downloads" without error and without a wheel: look for the file.
    probe = Path(f"/tmp/probe/{n}")
    if pip("download", "--no-deps", f"--dest={probe}", *TARGET, spec, quiet=True) and any(
        probe.glob("*.whl")
    ):
        wheels.append(spec)
    elif (pure := built_wheel(spec, n)) is not None:
        say(f"{spec}: no {arch} wheel; built a pure-Python wheel here")
        wheels.append(str(pure))
    else:
        say(f"{spec}: no {arch} wheel and it compiles code: left to the fallback stage")
        is_project = project is not None and info["url"] == project.as_uri()
        emulated.append("/src" if is_project else spec)
if wheels and not pip("install", f"--target={OUT}", "--no-deps", *TARGET, *wheels):
    sys.exit("crossport: installing the target wheels failed (see above)")
(PLAN_DIR / "emulated.txt").write_text("".join(spec + "\n" for spec in emulated))
say(f"{len(wheels)} packages installed here, {len(emulated)} left for emulation")
