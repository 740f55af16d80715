"""Platforms (`os/arch[/variant]`), normalised as containerd does; Linux targets only."""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import InvalidValue, check_text, unique_values

# Canonical containerd names, and for each architecture the variants it accepts (mapped to
# their canonical form; "" = no variant). Only Linux: that is what the builders run.

_ARCH_ALIASES = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm": "arm",
    "386": "386",
    "i386": "386",
    "i686": "386",
    "x86": "386",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# Aliases that carry a variant of their own.
_ARCH_WITH_VARIANT = {
    "armhf": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv6l": ("arm", "v6"),
}
_VARIANTS = {
    "amd64": {"": "", "v1": "", "v2": "v2", "v3": "v3", "v4": "v4"},
    "arm64": {"": "", "v8": "", "8": ""},
    "arm": {"": "v7", "v7": "v7", "7": "v7", "v6": "v6", "6": "v6", "v5": "v5", "5": "v5"},
}
_KNOWN_OS = {"linux"}
MAX_PLATFORMS = 8


def normalize_platform(text: str) -> str:
    """`os/arch[/variant]` or an alias ("aarch64", "armhf", "x86_64") -> "linux/arm64"..."""
    kind = "platform"
    check_text(kind, text, 64)
    parts = text.lower().split("/")
    if len(parts) > 3 or "" in parts:
        raise InvalidValue(kind, text, "expected os/arch[/variant], e.g. linux/arm64")
    if parts[0] in _KNOWN_OS:
        os_name, rest = parts[0], parts[1:]
        if not rest:
            raise InvalidValue(kind, text, "the architecture is missing, e.g. linux/arm64")
    elif len(parts) == 3:
        raise InvalidValue(kind, text, f"unknown operating system {parts[0]!r} (only linux)")
    else:
        os_name, rest = "linux", parts  # "arm64" or "arm/v7": the OS is implied
    arch_text = rest[0]
    variant = rest[1] if len(rest) > 1 else ""
    if arch_text in _ARCH_WITH_VARIANT:
        arch, implied = _ARCH_WITH_VARIANT[arch_text]
        if variant and variant != implied:
            raise InvalidValue(kind, text, f"{arch_text!r} already means {arch}/{implied}")
        variant = implied
    elif arch_text in _ARCH_ALIASES:
        arch = _ARCH_ALIASES[arch_text]
    elif len(parts) == 2 and parts[0] not in _KNOWN_OS:
        raise InvalidValue(kind, text, f"unknown operating system {parts[0]!r} (only linux)")
    else:
        raise InvalidValue(kind, text, f"unknown architecture {arch_text!r}")
    allowed = _VARIANTS.get(arch, {"": ""})
    if variant not in allowed:
        raise InvalidValue(kind, text, f"{arch} has no variant {variant!r}")
    canonical = f"{os_name}/{arch}"
    if allowed[variant]:
        canonical += f"/{allowed[variant]}"
    return canonical


def normalize_platforms(items: Iterable[str] | str) -> list[str]:
    """Normalise a comma/whitespace separated string or a list of platforms.

    Duplicates (after normalisation) are dropped, keeping the first; 1 to 8 platforms.
    """
    items = [items] if isinstance(items, str) else list(items)

    def each() -> Iterable[str]:
        for item in items:
            if not isinstance(item, str):
                raise InvalidValue("platform", item, "expected text")
            yield from (normalize_platform(w) for w in re.split(r"[,\s]+", item) if w)

    return unique_values(
        "platform list",
        items,
        each(),
        most=MAX_PLATFORMS,
        noun="platforms",
        empty="choose at least one platform",
    )
