from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

import lang_plugins
from lang_plugins import (
    ENTRY_POINT_GROUP,
    PLUGINS,
    UnknownPlugin,
    all_plugins,
    detect,
    get_plugin,
    plugin_errors,
)
from lang_plugins.base import Detection, Option, Plugin, Rendered
from lang_plugins.go import GoPlugin


@dataclass
class FakeEntryPoint:
    name: str
    loader: Callable[[], object]
    value: str = "fake_module:attr"
    group: str = ENTRY_POINT_GROUP

    def load(self) -> object:
        return self.loader()


class RustPlugin(Plugin):
    key = "rust"
    label = "Rust"
    options = (Option(name="bin", label="Binary"),)

    def detect(self, tree: Path) -> Detection | None:
        return Detection(score=0.95, options={}, evidence=["always sure"])

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        return Rendered(dockerfile="FROM scratch\n", dockerignore="")


class ExplodingPlugin(RustPlugin):
    key = "boom"

    def detect(self, tree: Path) -> Detection | None:
        raise RuntimeError("bug in a third-party plugin")


def fail_import() -> object:
    raise ImportError("No module named 'crossport_broken'")


def use_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> list[str]:
    """Make lang_plugins see ``eps``; returns the list of groups it asked for."""
    calls: list[str] = []

    def fake(*, group: str) -> list[FakeEntryPoint]:
        calls.append(group)
        return list(eps)

    monkeypatch.setattr(lang_plugins, "entry_points", fake)
    return calls


def test_builtin_registry_is_an_explicit_dict() -> None:
    assert list(PLUGINS)[0] == "go" and set(PLUGINS) <= {"go", "java", "python", "static"}
    assert isinstance(PLUGINS["go"], GoPlugin)


@pytest.mark.parametrize("key", sorted(PLUGINS))
def test_builtin_plugins_honour_the_contract(key: str) -> None:
    plugin = PLUGINS[key]
    assert plugin.key == key and plugin.label
    names = [option.name for option in plugin.options]
    assert len(names) == len(set(names))
    defaults = plugin.clean_options({})
    assert set(defaults) == set(names)
    rendered = plugin.render(defaults)
    assert dockerfile.parse_string(rendered.dockerfile)
    assert rendered.dockerfile.endswith("\n") and rendered.dockerignore.endswith("\n")


def test_get_plugin() -> None:
    assert get_plugin("go") is PLUGINS["go"]


def test_get_unknown_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch)
    with pytest.raises(UnknownPlugin) as info:
        get_plugin("nope")
    assert isinstance(info.value, KeyError)
    assert info.value.key == "nope"
    assert str(info.value) == f"unknown language plugin 'nope' (known: {', '.join(PLUGINS)})"
    assert pickle.loads(pickle.dumps(info.value)).key == "nope"


def test_third_party_plugin_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = use_entry_points(monkeypatch, FakeEntryPoint("rust", lambda: RustPlugin))
    assert list(all_plugins()) == [*PLUGINS, "rust"]
    assert isinstance(get_plugin("rust"), RustPlugin)
    assert plugin_errors() == []
    assert calls == [ENTRY_POINT_GROUP]  # discovered once, then cached


def test_third_party_instance_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    instance = RustPlugin()
    use_entry_points(monkeypatch, FakeEntryPoint("rust", lambda: instance))
    assert get_plugin("rust") is instance


def test_broken_entry_point_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", fail_import, value="crossport_broken:Plugin"),
        FakeEntryPoint("rust", lambda: RustPlugin),
    )
    with caplog.at_level(logging.WARNING, logger="lang_plugins"):
        plugins = all_plugins()
    assert list(plugins) == [*PLUGINS, "rust"]
    (error,) = plugin_errors()
    assert "'broken'" in error and "crossport_broken:Plugin" in error and "ImportError" in error
    assert any("broken" in record.getMessage() for record in caplog.records)
    with pytest.raises(UnknownPlugin):
        get_plugin("broken")


@pytest.mark.parametrize(
    ("entry_point", "reason"),
    [
        (FakeEntryPoint("go", lambda: RustPlugin), "built-in plugins cannot be replaced"),
        (FakeEntryPoint("ruby", lambda: RustPlugin), "does not match the plugin key 'rust'"),
        (FakeEntryPoint("rust", lambda: object), "not a lang_plugins.base.Plugin"),
        (FakeEntryPoint("rust", lambda: "rust"), "not a lang_plugins.base.Plugin"),
        (FakeEntryPoint("Rust!", lambda: RustPlugin), "key must be lowercase"),
    ],
)
def test_invalid_third_party_plugins_are_skipped(
    monkeypatch: pytest.MonkeyPatch, entry_point: FakeEntryPoint, reason: str
) -> None:
    use_entry_points(monkeypatch, entry_point)
    plugins = all_plugins()
    assert isinstance(plugins["go"], GoPlugin)
    assert "ruby" not in plugins and "rust" not in plugins
    (error,) = plugin_errors()
    assert reason in error


def test_duplicate_third_party_key_keeps_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    first = RustPlugin()
    use_entry_points(
        monkeypatch,
        FakeEntryPoint("rust", lambda: first),
        FakeEntryPoint("rust", lambda: RustPlugin()),
    )
    assert get_plugin("rust") is first
    (error,) = plugin_errors()
    assert "already uses this key" in error


def test_entry_point_listing_failure_is_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*, group: str) -> list[FakeEntryPoint]:
        raise ValueError("bad metadata")

    monkeypatch.setattr(lang_plugins, "entry_points", broken)
    assert list(all_plugins()) == list(PLUGINS)
    assert "bad metadata" in plugin_errors()[0]


def test_all_plugins_returns_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch)
    all_plugins()["x"] = RustPlugin()
    assert "x" not in all_plugins()


def test_detect_best_score_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module m\n")
    use_entry_points(monkeypatch, FakeEntryPoint("rust", lambda: RustPlugin))
    result = detect(tmp_path)
    assert result is not None
    assert result[0].key == "rust"


def test_detect_skips_failing_third_party_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "go.mod").write_text("module m\n")
    use_entry_points(monkeypatch, FakeEntryPoint("boom", lambda: ExplodingPlugin))
    with caplog.at_level(logging.WARNING, logger="lang_plugins"):
        result = detect(tmp_path)
    assert result is not None
    assert result[0].key == "go"
    assert any("'boom'" in record.getMessage() for record in caplog.records)
