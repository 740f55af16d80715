"""Language plugins: turn a project's language and options into a cross-building Dockerfile.

Built-in plugins are listed in :data:`PLUGINS`. Adding a language is one module, one line here,
and its tests and golden files.

Third-party plugins are installed packages that declare an entry point in the group
``crossport.lang_plugins``; the entry point's name is the plugin key and its object is a
:class:`~lang_plugins.base.Plugin` subclass (or instance) with that same ``key``::

    [project.entry-points."crossport.lang_plugins"]
    rust = "crossport_rust:RustPlugin"

A third-party plugin that fails to load, or tries to take a built-in key, is left out: it is logged
and listed by :func:`plugin_errors`, which the portal's system check ``crossport.E001`` reports, so
``manage.py check`` (and ``serve``) fail until the operator fixes, uninstalls or silences it.
"""

from __future__ import annotations

import functools
import logging
import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from .base import (
    Detection,
    Option,
    OptionError,
    Plugin,
    Rendered,
    UnknownPlugin,
)
from .dockerfile import dockerfile_quote, dockerfile_unquote, mirror_image
from .go import GoPlugin
from .java import JavaPlugin
from .python import PythonPlugin
from .static import StaticPlugin

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS",
    "Detection",
    "Option",
    "OptionError",
    "Plugin",
    "Rendered",
    "UnknownPlugin",
    "all_plugins",
    "clear_plugin_cache",
    "detect",
    "dockerfile_quote",
    "dockerfile_unquote",
    "get_plugin",
    "mirror_image",
    "plugin_errors",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "crossport.lang_plugins"

# Keys are stored on projects: never rename one.
PLUGINS: dict[str, Plugin] = {
    "go": GoPlugin(),
    "java": JavaPlugin(),
    "python": PythonPlugin(),
    "static": StaticPlugin(),
}

_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class _BadPlugin(Exception):
    pass


def all_plugins() -> dict[str, Plugin]:
    """Built-in plugins followed by the third-party ones that loaded (loaded once, cached)."""
    return dict(_discover()[0])


def plugin_errors() -> list[str]:
    """Why third-party plugins were skipped, one sentence each (for system checks and admins)."""
    return list(_discover()[1])


def clear_plugin_cache() -> None:
    """Forget discovered third-party plugins; the next call looks at the entry points again."""
    _discover.cache_clear()


def get_plugin(key: str) -> Plugin:
    plugins = all_plugins()
    try:
        return plugins[key]
    except KeyError:
        raise UnknownPlugin(key, plugins) from None


def detect(tree: Path) -> tuple[Plugin, Detection] | None:
    """The plugin most confident about ``tree`` and its detection; ties go to registry order."""
    best: tuple[Plugin, Detection] | None = None
    for key, plugin in all_plugins().items():
        try:
            found = plugin.detect(tree)
        except Exception:
            if key in PLUGINS:
                raise  # a bug in our own code should be seen, not skipped
            logger.warning("Language plugin %r failed to inspect a source tree", key, exc_info=True)
            continue
        if found is not None and found.score > 0 and (best is None or found.score > best[1].score):
            best = (plugin, found)
    return best


@functools.cache
def _discover() -> tuple[dict[str, Plugin], tuple[str, ...]]:
    plugins: dict[str, Plugin] = dict(PLUGINS)
    errors: list[str] = []
    try:
        found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    except Exception as exc:  # a broken distribution's metadata
        found = []
        errors.append(f"could not list {ENTRY_POINT_GROUP} entry points: {exc}")
    for ep in found:
        try:
            plugin = _load(ep, plugins)
        except Exception as exc:
            message = f"plugin {ep.name!r} ({ep.value}) skipped: {type(exc).__name__}: {exc}"
            logger.warning("Language plugin skipped: %s", message)
            errors.append(message)
            continue
        plugins[plugin.key] = plugin
    return plugins, tuple(errors)


def _load(ep: EntryPoint, loaded: dict[str, Plugin]) -> Plugin:
    if ep.name in PLUGINS:
        raise _BadPlugin("built-in plugins cannot be replaced")
    if ep.name in loaded:
        raise _BadPlugin("another installed plugin already uses this key")
    if not _KEY_RE.fullmatch(ep.name):
        raise _BadPlugin("key must be lowercase letters, digits, '-' or '_' (at most 40)")
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, Plugin):
        obj = obj()
    if not isinstance(obj, Plugin):
        raise _BadPlugin("entry point is not a lang_plugins.base.Plugin subclass or instance")
    if obj.key != ep.name:
        raise _BadPlugin(f"entry point name does not match the plugin key {obj.key!r}")
    if not obj.label or not all(isinstance(option, Option) for option in obj.options):
        raise _BadPlugin("plugin needs a label and a tuple of Option")
    return obj
