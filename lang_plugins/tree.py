"""Read-only access to a project's source tree, for plugins' ``detect``.

The tree is a user's checkout, so it is untrusted: symlinks may point anywhere, files may be huge
or not regular files at all. These helpers never leave the tree, never read more than
``MAX_FILE_BYTES`` of a file, and turn every problem into "not there" (None or []).
"""

from __future__ import annotations

from pathlib import Path

MAX_FILE_BYTES = 1024 * 1024
# Enough for any real source directory; bounds the work on a pathological tree.
MAX_DIR_ENTRIES = 10_000


def resolve_inside(tree: Path, relpath: str) -> Path | None:
    """The real path of ``tree/relpath`` if it exists and stays inside the tree, else None."""
    try:
        root = tree.resolve(strict=True)
        resolved = (tree / relpath).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, permission denied, symlink loop
        return None
    return resolved if resolved.is_relative_to(root) else None


def read_text(tree: Path, relpath: str, *, limit: int = MAX_FILE_BYTES) -> str | None:
    """Text of a regular file inside the tree, or None if absent, outside, unreadable or too big."""
    path = resolve_inside(tree, relpath)
    if path is None:
        return None
    try:
        if not path.is_file():  # directories, FIFOs and devices are never opened
            return None
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    return data.decode("utf-8", errors="replace")


def list_dir(tree: Path, relpath: str = ".") -> list[str]:
    """Sorted entry names of a directory inside the tree; [] if absent, outside or unreadable."""
    path = resolve_inside(tree, relpath)
    if path is None:
        return []
    try:
        if not path.is_dir():
            return []
        names = sorted(entry.name for entry in path.iterdir())
    except OSError:
        return []
    return names[:MAX_DIR_ENTRIES]


def is_dir(tree: Path, relpath: str) -> bool:
    path = resolve_inside(tree, relpath)
    try:
        return path is not None and path.is_dir()
    except OSError:
        return False
