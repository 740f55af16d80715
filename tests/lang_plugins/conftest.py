from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lang_plugins

GOLDEN_DIR = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Each test discovers third-party plugins afresh (tests monkeypatch entry_points)."""
    lang_plugins.clear_plugin_cache()
    yield
    lang_plugins.clear_plugin_cache()


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text byte for byte with tests/lang_plugins/golden/NAME; UPDATE_GOLDEN=1 rewrites."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        data = text.encode("utf-8")
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_bytes(data)
            return
        assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
        assert path.read_bytes() == data, f"{name} differs; if intended, run with UPDATE_GOLDEN=1"

    return check


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write {relative path: text} under a fresh directory and return that directory."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "src"
        root.mkdir(exist_ok=True)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return root

    return make
