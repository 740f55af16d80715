"""git through the choke point, against real local repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from builds.gitsource import SourceError, fetch, fetched_tag
from fakes import write_hello

GIT = ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid"]


@pytest.fixture
def repo(tmp_path: Path, settings: Any) -> tuple[Path, list[str]]:
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path / "repos")]
    path = tmp_path / "repos" / "hello"
    write_hello(path)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "one"], check=True)
    first = subprocess.run(
        [*GIT, "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    (path / "NOTES").write_text("two\n")
    subprocess.run([*GIT, "-C", str(path), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "two"], check=True)
    subprocess.run([*GIT, "-C", str(path), "tag", "v1.0.0"], check=True)
    second = subprocess.run(
        [*GIT, "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return path, [first, second]


def test_fetch_branch_tag_and_commit(repo: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, (first, second) = repo
    assert fetch(f"file://{path}", "main", tmp_path / "a") == second
    assert (tmp_path / "a" / "NOTES").exists()
    assert fetch(f"file://{path}", "v1.0.0", tmp_path / "b") == second
    assert fetch(f"file://{path}", first[:10], tmp_path / "c") == first
    assert not (tmp_path / "c" / "NOTES").exists()


def test_the_checkout_knows_a_tag_from_a_branch_named_like_one(
    repo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, (first, second) = repo
    subprocess.run([*GIT, "-C", str(path), "branch", "v9.9.9", first], check=True)
    subprocess.run([*GIT, "-C", str(path), "tag", "-a", "-m", "rel", "v2.0.0", first], check=True)
    url = f"file://{path}"
    cases = {
        "v1.0.0": "v1.0.0",  # lightweight tag
        "v2.0.0": "v2.0.0",  # annotated tag
        "refs/tags/v1.0.0": "v1.0.0",
        "v9.9.9": None,  # a branch
        "main": None,
        first[:10]: None,  # a commit
    }
    for n, (ref, tag) in enumerate(cases.items()):
        fetch(url, ref, tmp_path / str(n))
        assert fetched_tag(tmp_path / str(n)) == tag, ref
    assert fetched_tag(tmp_path / "never-fetched") is None


def test_unknown_ref_is_the_projects_fault(repo: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, _ = repo
    with pytest.raises(SourceError, match="git fetch failed"):
        fetch(f"file://{path}", "no-such-branch", tmp_path / "x")


def test_file_urls_outside_the_allowed_roots_are_refused(tmp_path: Path, settings: Any) -> None:
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path / "repos")]
    with pytest.raises(SourceError, match="PORTAL_GIT_FILE_ROOTS"):
        fetch("file:///work/main", "main", tmp_path / "x")
    with pytest.raises(SourceError, match="PORTAL_GIT_FILE_ROOTS"):
        fetch(f"file://{tmp_path}/repos/../../etc", "main", tmp_path / "y")
    assert not (tmp_path / "x").exists()
