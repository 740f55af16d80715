"""What a runtime image gets besides the app: Debian packages, environment, a data directory.

Options any plugin may offer (the Python plugin does), each a grammar, and the Dockerfile lines
they become; values reach those lines only through :func:`dockerfile_quote` (package names are
plain words of their own grammar).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .base import Option
from .dockerfile import dockerfile_quote

APP_USER = "65532:65532"  # the runtime's user: no root, no name needed in /etc/passwd

# Debian package names (Debian policy: lower case letters, digits, + - . ; two characters or
# more, starting with a letter or digit), separated by spaces.
_DEB_NAME = r"[a-z0-9][a-z0-9+.-]+"
SYSTEM_PACKAGES_PATTERN = rf"{_DEB_NAME}(?: +{_DEB_NAME})*"
# Environment: NAME=value words. Values are plain words (no quotes, spaces or $, so nothing
# expands); the names the plugin's runtime stage sets itself are refused (see image_options).
_ENV_VALUE = r"[A-Za-z0-9_./:=@%+,-]*"
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# An absolute path of plain names without . or ..: not in the code or system folders, and not
# one of the top-level folders that hold other things (a folder under /var or /srv is fine).
_CODE_DIRS = "app|install|bin|boot|dev|etc|lib|lib64|proc|sbin|sys|usr"
_TOP_DIRS = "home|mnt|opt|root|run|srv|tmp|var"
DATA_DIR_PATTERN = (
    rf"(?!/(?:{_CODE_DIRS})(?:/|$))(?!/(?:{_TOP_DIRS})$)(?!.*/\.\.?(?:/|$))(?:/[A-Za-z0-9_.-]+)+"
)

APT_INSTALL = """\
# Debian packages the app runs (system_packages): apt-get on the target platform, under QEMU for
# foreign ones, from the runtime image's own apt sources.
# hadolint ignore=DL3008
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/*
"""


def env_pattern(reserved: tuple[str, ...]) -> str:
    pair = rf"(?!(?:{'|'.join(reserved)})=){_ENV_NAME}={_ENV_VALUE}"
    return rf"{pair}(?: +{pair})*"


def image_options(reserved: tuple[str, ...]) -> tuple[Option, ...]:
    """system_packages, env and data_dir; `reserved`: environment names the plugin sets."""
    return (
        Option(
            name="system_packages",
            label="Debian packages",
            help='Programs the app runs, installed in the image with apt-get, e.g. "git '
            'curl". They install on each target platform (under emulation for foreign '
            "ones), so keep the list short.",
            default="",
            max_length=500,
            pattern=SYSTEM_PACKAGES_PATTERN,
            pattern_message="must be Debian package names (a-z, 0-9, + - .) separated by spaces",
        ),
        Option(
            name="env",
            label="Environment",
            help="NAME=value pairs set in the image, separated by spaces, e.g. "
            '"APP_MODE=production DATA_DIR=/data". Not for secrets: whoever pulls the image '
            "reads them.",
            default="",
            max_length=1000,
            pattern=env_pattern(reserved),
            pattern_message="must be NAME=value pairs separated by spaces; values of letters, "
            f"digits and . _ / : = @ % + , - ({', '.join(reserved)} are the plugin's own)",
        ),
        Option(
            name="data_dir",
            label="Data directory",
            help="An absolute path the app writes to, e.g. /data: created empty, owned by the "
            "app's user, its HOME, and declared a VOLUME, so `docker run -v data:/data` keeps "
            "its files. Empty: none (the app's user can write nowhere but /tmp).",
            default="",
            max_length=200,
            pattern=DATA_DIR_PATTERN,
            pattern_message="must be an absolute path of letters, digits and . _ -, without . "
            "or .. and not a system folder such as /usr or /app",
        ),
    )


def image_settings(opts: Mapping[str, str], build_image: str) -> tuple[str, str]:
    """(a stage to add, lines for the runtime stage before the app) for cleaned options."""
    stage, lines = "", ""
    if opts["system_packages"]:
        lines += APT_INSTALL.format(packages=" ".join(opts["system_packages"].split()))
    if opts["data_dir"]:
        # An empty folder made on the build platform, copied in with the app's user as its
        # owner: no step of the runtime stage runs, so no emulation. It is also the user's
        # home (the user has no /etc/passwd entry, so HOME would be /, which it cannot
        # write): programs the app runs keep their settings there (docker, git, ssh).
        stage = f"""
FROM --platform=$BUILDPLATFORM {build_image} AS data
RUN mkdir -m 0750 /data
"""
        path = opts["data_dir"]
        lines += (
            f"COPY --link --chown={APP_USER} --from=data /data {dockerfile_quote(path)}\n"
            f"VOLUME {json.dumps([path])}\n"
            f"ENV HOME={dockerfile_quote(path)}\n"
        )
    if opts["env"]:  # after HOME: the project's own settings win
        pairs = (pair.split("=", 1) for pair in opts["env"].split())
        lines += f"ENV {' '.join(f'{k}={dockerfile_quote(v)}' for k, v in pairs)}\n"
    return stage, lines
