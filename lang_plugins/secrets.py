"""Build secrets in generated Dockerfiles: the name grammar, the option that names one, and
the mount line. Only a secret's *name* is ever written into a Dockerfile; BuildKit mounts its
value as a file for one RUN step (``--mount=type=secret``), so it reaches no layer, build
argument or environment variable.

A step that reads a secret declares ``ARG CROSSPORT_TEAM_SCOPE`` just before it: the portal
passes a team-specific value, and an ARG a RUN sees is part of that step's cache key, so one
team's cached result of such a step is never reused for another team (BuildKit leaves secret
contents out of the cache key).
"""

from __future__ import annotations

import re

from .base import Option

SECRET_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
SECRET_NAME_MESSAGE = "must be a secret name: a letter, then up to 63 letters, digits, '_' or '-'"
SCOPE_ARG = "CROSSPORT_TEAM_SCOPE"


def is_secret_name(value: str) -> bool:
    return re.fullmatch(SECRET_NAME_PATTERN, value) is not None


def secret_option(name: str, label: str, reads: str) -> Option:
    """An option naming a team secret; `reads` says what the secret holds and where it goes."""
    return Option(
        name=name,
        label=label,
        help=f"Name of a team secret holding {reads}. Empty: none.",
        max_length=64,
        pattern=SECRET_NAME_PATTERN,
        pattern_message=SECRET_NAME_MESSAGE,
        secret=True,
    )


def secret_mount(name: str, target: str) -> str:
    """The RUN flag mounting secret `name` as the file `target` (required: a missing secret
    fails the step instead of running it without)."""
    if not is_secret_name(name):
        raise ValueError("not a secret name")
    if not re.fullmatch(r"/[A-Za-z0-9._/-]+", target):
        raise ValueError("not a plain absolute path")
    return f"--mount=type=secret,id={name},target={target},required=true"


def scope_arg() -> str:
    """The line before a secret-reading RUN (see the module docstring)."""
    return f"ARG {SCOPE_ARG}\n"
