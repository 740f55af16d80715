"""Crossport's Python build plan: install the target platform's wheels on the build platform.

The python plugin embeds this file in the Dockerfile it writes (a heredoc in the ``deps`` stage),
so it runs with the build stage's Python, which is the runtime's version, once per target platform,
on ``$BUILDPLATFORM``. It installs only /resolved/native.txt, the packages with compiled code that
python_resolve.py left to each platform (pure-Python ones are installed once, for all). It writes
the wheels to /install and the plan to /plan: plan.txt (what it decided, also printed) and
emulated.txt (packages left to the fallback stage under emulation). Nothing a user typed reaches it.

It is a plain file, not a module of the plugin: it must run on Python 3.9 with only the standard
library, and it must never contain the heredoc's end word.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

target = os.environ.get("TARGETPLATFORM", "?")
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


native = [spec for spec in Path("/resolved/native.txt").read_text().splitlines() if spec]
(PLAN_DIR / "emulated.txt").touch()
if not native:
    say("every package is pure Python (installed once for all platforms)")
    sys.exit(0)
if pip("install", f"--target={OUT}", "--no-deps", *TARGET, *native):
    say(f"{len(native)} packages with compiled code: every one a wheel for {arch}")
    sys.exit(0)

say(f"some packages have no {arch} wheel (pip's errors above): planning package by package")
shutil.rmtree(OUT)
OUT.mkdir()
wheels: list[str] = []
emulated: list[str] = []
for n, spec in enumerate(native):
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
        emulated.append(spec)
if wheels and not pip("install", f"--target={OUT}", "--no-deps", *TARGET, *wheels):
    sys.exit("crossport: installing the target wheels failed (see above)")
(PLAN_DIR / "emulated.txt").write_text("".join(spec + "\n" for spec in emulated))
say(f"{len(wheels)} packages installed here, {len(emulated)} left for emulation")
