"""The README's third-party plugin example, installed for real as a distribution with an entry
point in the documented group, is found, listed and renders; its broken twin is reported."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import lang_plugins

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)
    return next(block for block in blocks if containing in block)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A site dir holding crossport_rust (the README's code) and its dist-info entry point."""
    (tmp_path / "crossport_rust.py").write_text(_readme_block("python", "class RustPlugin"))
    toml = _readme_block("toml", "crossport.lang_plugins")
    name, target = re.search(r'^(\w+) = "([^"]+)"', toml, re.M).groups()  # type: ignore[union-attr]
    dist = tmp_path / "crossport_rust-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crossport-rust\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[crossport.lang_plugins]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lang_plugins.clear_plugin_cache()
    yield tmp_path
    sys.modules.pop("crossport_rust", None)
    lang_plugins.clear_plugin_cache()


def test_the_readme_example_installs_as_a_plugin(installed: Path, tmp_path: Path) -> None:
    plugins = lang_plugins.all_plugins()
    assert "rust" in plugins and list(plugins)[: len(lang_plugins.PLUGINS)] == list(
        lang_plugins.PLUGINS
    )
    rust = lang_plugins.get_plugin("rust")
    rendered = rust.render(rust.clean_options({}), mirror="localhost:5000/library")
    assert rendered.dockerfile.startswith(
        "FROM --platform=$BUILDPLATFORM localhost:5000/library/rust:1.83"
    )
    assert 'ARG BIN="app"' in rendered.dockerfile
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "Cargo.toml").write_text('[package]\nname = "x"\n')
    plugin, detection = lang_plugins.detect(tree)  # type: ignore[misc]
    assert plugin.key == "rust" and detection.evidence == ["Cargo.toml found"]
    with pytest.raises(lang_plugins.OptionError, match="bin"):
        rust.clean_options({"bin": "Bad Name"})


def test_a_broken_third_party_plugin_is_reported_not_fatal(installed: Path) -> None:
    (installed / "crossport_rust.py").write_text("raise ImportError('missing dependency')\n")
    plugins = lang_plugins.all_plugins()
    assert "rust" not in plugins and "go" in plugins
    assert any(
        "rust" in error and "missing dependency" in error for error in lang_plugins.plugin_errors()
    )
