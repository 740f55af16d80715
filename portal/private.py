"""Files and folders only the portal's own user may read.

The data dir holds the SQLite database, the secret key (which signs sessions and, without
PORTAL_ENCRYPTION_KEY, seals stored secrets) and build workspaces with registry logins and node
TLS keys in them. The portal's processes run with umask 077 (set in portal/settings.py, which
every entry point loads), and the helpers here give modes explicitly where secrets and their
folders are made, so they hold whatever umask a process started with. No Django imports: the
settings module uses this.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

UMASK = 0o077  # new files 0600, new folders 0700


def private_dir(path: Path) -> Path:
    """Make `path` (0700) or close an existing one of ours that others could enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def create_once(path: Path, text: str) -> str:
    """Write `text` to `path` (0600) unless it exists, and return what `path` holds.

    Processes starting together (server and workers on a new data dir) must agree: the text goes
    to a private temporary file first, which is then linked into place. A link never replaces an
    existing file, so the first one wins whole and nobody reads a half-written file.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text()
