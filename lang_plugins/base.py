"""The plugin contract: options, detection results and rendered files.

Plain Python on purpose: no Django, no imports from ``portal`` or ``builds``. A plugin turns a
source tree plus user options into a cross-building Dockerfile; everything a user types reaches
that Dockerfile only through :func:`lang_plugins.dockerfile.dockerfile_quote`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .dockerfile import describe_char, find_control_char


class OptionError(ValueError):
    """A user-supplied option value was rejected; ``option`` names the field for the form."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(option, message)
        self.option = option
        self.message = message

    def __str__(self) -> str:
        return f"{self.option}: {self.message}"


class UnknownPlugin(KeyError):
    """No plugin is registered under ``key``."""

    def __init__(self, key: str, known: Iterable[str]) -> None:
        self.key = key
        self.known = tuple(sorted(known))
        super().__init__(key, self.known)  # args match __init__, so the error pickles

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the single argument; say something readable instead.
        known = ", ".join(self.known) or "none"
        return f"unknown language plugin {self.key!r} (known: {known})"


@dataclass(frozen=True)
class Option:
    """One user-settable option of a plugin; :meth:`clean` is its only validator."""

    name: str
    label: str
    help: str = ""
    default: str = ""
    choices: tuple[str, ...] = ()
    max_length: int = 200
    # A regex the whole value must match (re.fullmatch), and the message shown when it does not.
    pattern: str | None = None
    pattern_message: str = ""
    # The value names a team secret (lang_plugins.secrets); the portal mounts that secret.
    secret: bool = False

    def __post_init__(self) -> None:
        # A plugin whose own default would be rejected is a programming error: fail at import.
        if self.default:
            self._check(self.default)

    def clean(self, value: object) -> str:
        """Validate one raw value; None or "" (also after stripping) means the default."""
        if value is None:
            return self.default
        if not isinstance(value, str):
            raise OptionError(self.name, "must be text")
        # Checked before stripping: a trailing newline is rejected, not silently dropped.
        bad = find_control_char(value)
        if bad is not None:
            raise OptionError(
                self.name, f"must not contain control characters (found {describe_char(bad)})"
            )
        value = value.strip()
        if not value:
            return self.default
        self._check(value)
        return value

    def _check(self, value: str) -> None:
        bad = find_control_char(value)
        if bad is not None:
            raise OptionError(
                self.name, f"must not contain control characters (found {describe_char(bad)})"
            )
        if len(value) > self.max_length:
            raise OptionError(self.name, f"must be at most {self.max_length} characters")
        if self.choices and value not in self.choices:
            raise OptionError(self.name, f"must be one of: {', '.join(self.choices)}")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise OptionError(self.name, self.pattern_message or "has an invalid format")


@dataclass(frozen=True)
class Detection:
    """What a plugin found in a source tree: how sure it is, suggested options, and why."""

    score: float
    options: dict[str, str] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:  # also rejects NaN
            raise ValueError(f"score must be between 0 and 1, not {self.score!r}")


@dataclass(frozen=True)
class Rendered:
    dockerfile: str
    dockerignore: str


class Plugin:
    """Base class of a language plugin: a key, a label, options, detect and render.

    ``key`` is stored on projects: never rename it once released.
    """

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # Regexes (re.search on each stripped line) for what an error line of the plugin's tools
    # looks like: the first output line of a failed step that matches one is the build's
    # headline (builds.headline), ahead of the generic shapes.
    error_patterns: ClassVar[tuple[str, ...]] = ()

    def detect(self, tree: Path) -> Detection | None:
        """Inspect (read only) the source tree; None when this is not the plugin's language."""
        return None

    def clean_options(self, raw: Mapping[str, object]) -> dict[str, str]:
        """Validate raw user input; the result has every option, defaults filled in."""
        known = {option.name for option in self.options}
        for name in sorted(str(name) for name in raw):
            if name not in known:
                raise OptionError(name, f"unknown option for {self.key}")
        return {option.name: option.clean(raw.get(option.name)) for option in self.options}

    def secret_names(self, options: Mapping[str, str]) -> list[str]:
        """The team secrets these (cleaned) options name: the build must get them."""
        return [options[o.name] for o in self.options if o.secret and options.get(o.name)]

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        """Produce the Dockerfile and .dockerignore from cleaned options."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}>"
