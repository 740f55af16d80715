"""Crossport's Python sources step: copy out what installing the requirements reads.

The python plugin embeds this file in the Dockerfile it writes (a heredoc in the ``sources``
stage, requirements mode): ``argv`` is the tree (the whole source, mounted at /src) and the
output folder (/sources). It copies only requirements.txt and the files it names with -r/-c
(recursively), so the resolve, deps and fallback stages, which mount /sources, keep their
cache while only the application's code changes (BuildKit compares the content of what they
mount). A requirement that points into the tree (-e, a local path, file:) needs the tree
itself: then all of it is copied.

It is a plain file, not a module of the plugin: it must run on Python 3.9 with only the standard
library, and it must never contain the heredoc's end word.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

SRC, OUT = Path(sys.argv[1]).resolve(), Path(sys.argv[2])  # /src, /sources
NESTED = ("-r", "--requirement", "-c", "--constraint")
LOCAL = ("-e", "--editable", ".", "/", "file:")


def needs(name: str, seen: set[Path]) -> bool:
    """Add the requirements file `name` (and what it includes) to `seen`; False when one of
    them points into the tree."""
    path = (SRC / name).resolve()
    if path in seen or not path.is_file() or SRC not in path.parents:
        return True  # pip says what is missing; nothing outside /src is copied
    seen.add(path)
    for line in path.read_text(errors="replace").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # unbalanced quotes: pip will say so
            words = line.split()
        if words and "=" in words[0] and words[0].split("=")[0] in NESTED:
            words = [*words[0].split("=", 1), *words[1:]]  # --requirement=base.txt
        if not words:
            continue
        if words[0] in NESTED and len(words) > 1:
            if not needs(str(path.parent.relative_to(SRC) / words[1]), seen):
                return False
        elif words[0].startswith(LOCAL) or "@ file:" in line:
            return False
    return True


seen: set[Path] = set()
if needs("requirements.txt", seen):
    for path in seen:
        target = OUT / path.relative_to(SRC)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    OUT.mkdir(exist_ok=True)
    print(f"crossport: dependencies read from {len(seen)} requirements file(s)", flush=True)
else:
    shutil.copytree(SRC, OUT, symlinks=True)
    print("crossport: a requirement points into the source tree: it is read whole", flush=True)
