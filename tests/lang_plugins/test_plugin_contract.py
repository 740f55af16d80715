"""What every built-in plugin owes the portal, checked the same way for each: it is registered
under its key, its default render matches its golden files, and unknown options are refused
with the option named."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lang_plugins import PLUGINS, get_plugin
from lang_plugins.base import OptionError

Golden = Callable[[str, str], None]


@pytest.mark.parametrize("key", list(PLUGINS))
def test_registered_under_its_key(key: str) -> None:
    assert get_plugin(key) is PLUGINS[key]
    assert PLUGINS[key].key == key


@pytest.mark.parametrize("key", list(PLUGINS))
def test_default_render_matches_golden(key: str, golden: Golden) -> None:
    plugin = PLUGINS[key]
    rendered = plugin.render(plugin.clean_options({}))
    golden(f"{key}_default.Dockerfile", rendered.dockerfile)
    golden(f"{key}_default.dockerignore", rendered.dockerignore)


@pytest.mark.parametrize("key", list(PLUGINS))
def test_unknown_option_is_refused_by_name(key: str) -> None:
    with pytest.raises(OptionError) as info:
        PLUGINS[key].clean_options({"no_such_option": "x"})
    assert str(info.value) == f"no_such_option: unknown option for {key}"
