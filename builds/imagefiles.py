"""Find the program an image runs, in its layers, the way a container would open it.

The layers are read as their tar streams (no engine, nothing extracted): the merged view applies
each layer's whiteouts (`.wh.NAME`) and opaque folders (`.wh..wh..opq`) to the layers below it;
a path is resolved one component at a time, following symlinks in any component (Debian's
`/bin -> usr/bin`, `/usr/bin/java -> /etc/alternatives/java -> ...`); a bare program name is
looked up in the image's PATH; an interpreter script (`#!`) leads to its interpreter.
"""

from __future__ import annotations

import posixpath
import shlex
import tarfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHELLS = {"sh", "bash", "ash", "dash", "zsh"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_LINKS = 40  # as Linux's MAXSYMLINKS
HEAD = 128


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir", "symlink" or "other"
    layer: int
    member: str  # its name inside the layer's tar
    target: str = ""  # a symlink's target


def clean(name: str) -> str:
    return posixpath.normpath("/" + name.lstrip("/")).replace("//", "/")


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


class ImageTree:
    """The merged file tree of an image's layers (names and kinds only)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.layers: list[Path] = []

    def add_layer(self, path: Path) -> None:
        index = len(self.layers)
        self.layers.append(path)
        own: dict[str, Entry] = {}
        hidden: list[str] = []  # removed paths, or opaque folders (their content only)
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = clean(member.name)
                folder, base = posixpath.split(name)
                if base == ".wh..wh..opq":
                    hidden.append(folder + "/")
                elif base.startswith(".wh."):
                    hidden.append(posixpath.join(folder, base[4:]))
                else:
                    kind = (
                        "dir"
                        if member.isdir()
                        else "symlink"
                        if member.issym()
                        else "file"
                        if member.isfile() or member.islnk()
                        else "other"
                    )
                    own[name] = Entry(kind, index, member.name, member.linkname * member.issym())
        for gone in hidden:
            prefix = gone if gone.endswith("/") else gone + "/"
            for name in [n for n in self.entries if n == gone or n.startswith(prefix)]:
                del self.entries[name]
        self.entries.update(own)

    def resolve(self, path: str) -> str | None:
        """The regular file `path` leads to, symlinks followed; None when there is none."""
        parts = deque(_split(path))
        done, hops = "/", 0
        while parts:
            name = parts.popleft()
            if name == "..":
                done = posixpath.dirname(done)
                continue
            candidate = posixpath.join(done, name)
            entry = self.entries.get(candidate)
            if entry is not None and entry.kind == "symlink":
                hops += 1
                if hops > MAX_LINKS:
                    return None
                parts.extendleft(reversed(_split(entry.target)))
                if entry.target.startswith("/"):
                    done = "/"
                continue
            if entry is not None and entry.kind != "dir" and parts:
                return None  # a file where a folder should be
            done = candidate
        entry = self.entries.get(done)
        return done if entry is not None and entry.kind == "file" else None

    def head(self, path: str, size: int = HEAD) -> bytes:
        entry = self.entries[path]
        with tarfile.open(self.layers[entry.layer], "r:*") as tar:
            handle = tar.extractfile(tar.getmember(entry.member))
            return handle.read(size) if handle is not None else b""

    def which(self, program: str, env_path: str, workdir: str) -> tuple[str, str] | None:
        """(the path as found, the file it resolves to) for a program name or path."""
        if "/" in program:
            named = program if program.startswith("/") else posixpath.join(workdir, program)
            real = self.resolve(named)
            return (clean(named), real) if real else None
        for folder in env_path.split(":"):
            if folder.startswith("/"):
                named = posixpath.join(folder, program)
                real = self.resolve(named)
                if real:
                    return named, real
        return None


def _program_word(words: list[str]) -> str | None:
    """The program of an argv: after `env` (its options and NAME=value), after `exec`."""
    words = list(words)
    while words:
        word = words[0]
        if posixpath.basename(word) == "env" or word == "exec":
            words = words[1:]
            while words and (words[0].startswith("-") or "=" in words[0]):
                words = words[1:]
            continue
        if "=" in word and not word.startswith("/"):  # NAME=value before a shell command
            words = words[1:]
            continue
        return word
    return None


def program_of(config: dict[str, Any]) -> str | None:
    """The program a container of this image config starts (a shell's `-c` command counts as
    the program it runs)."""
    settings = config.get("config") or {}
    entrypoint = list(settings.get("Entrypoint") or [])
    cmd = list(settings.get("Cmd") or [])
    argv = entrypoint + cmd if entrypoint else cmd
    if len(argv) >= 3 and posixpath.basename(argv[0]) in SHELLS and argv[1] == "-c":
        try:
            return _program_word(shlex.split(argv[2])) or argv[0]
        except ValueError:
            return argv[0]
    return _program_word(argv)


def env_path(config: dict[str, Any]) -> str:
    for item in (config.get("config") or {}).get("Env") or []:
        if isinstance(item, str) and item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


@dataclass(frozen=True)
class Found:
    named: str  # what the config names, resolved in PATH ("/usr/bin/python3")
    real: str  # the file that is (symlinks followed: "/usr/bin/python3.11")
    head: bytes  # its first bytes


def find_binary(tree: ImageTree, config: dict[str, Any]) -> Found | str:
    """The binary the image runs (through one or two `#!` interpreters), or why none."""
    program = program_of(config)
    if not program:
        return "the image names no ENTRYPOINT or CMD"
    workdir = (config.get("config") or {}).get("WorkingDir") or "/"
    path = env_path(config)
    for _ in range(3):
        found = tree.which(program, path, workdir)
        if found is None:
            return f"{program} is not in the image"
        named, real = found
        head = tree.head(real)
        if not head.startswith(b"#!"):
            return Found(named, real, head)
        line = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
        interpreter = _program_word(line) if line else None
        if not interpreter:
            return f"{named} is a script without an interpreter"
        program = interpreter
    return f"{program}: too many interpreters"
