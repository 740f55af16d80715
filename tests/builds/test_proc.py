"""Process handling: timeouts and stops kill the whole group; buildx gets SIGINT, then SIGKILL."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from builds import buildx
from builds.proc import ProcessStopped, ProcessTimeout, run

ENV = {"PATH": os.environ["PATH"]}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return status not in ("Z", "X")


def _spec(tmp_path: Path, tag: str = "z") -> buildx.BuildSpec:
    """A build of `tag` by the fake docker CLI the test put in PORTAL_DOCKER_CLI."""
    return buildx.BuildSpec(
        context=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        platforms=["linux/amd64"],
        tags=[f"localhost:5000/x/y:{tag}"],
        metadata_file=tmp_path / f"{tag}.json",
    )


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    with pytest.raises(ProcessTimeout):
        run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], env=ENV, timeout=1.5)
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


def test_tick_can_stop_a_running_program() -> None:
    calls = []

    def tick() -> bool:
        calls.append(1)
        return len(calls) >= 2

    started = time.monotonic()
    with pytest.raises(ProcessStopped):
        run(["sleep", "30"], env=ENV, timeout=60, tick=tick)
    assert time.monotonic() - started < 10


def test_output_and_exit_code_are_returned() -> None:
    result = run(["sh", "-c", "echo out; echo err >&2; exit 3"], env=ENV, timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_buildx_is_interrupted_then_killed_after_the_grace(tmp_path: Path, settings: Any) -> None:
    """A fake docker CLI that ignores SIGINT: cancel must still end it after the grace."""
    script = tmp_path / "docker"
    marker = tmp_path / "got-sigint"
    script.write_text(
        f"#!/bin/sh\ntrap 'touch {marker}' INT\necho '{{}}'\nwhile true; do sleep 0.1; done\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    settings.PORTAL_DOCKER_CLI = str(script)
    spec = _spec(tmp_path)
    seen: list[bytes] = []
    started = time.monotonic()
    [code] = buildx.run([spec], lambda _, chunk: seen.append(chunk), lambda: True, grace=1.0)
    elapsed = time.monotonic() - started
    assert marker.exists(), "buildx first gets SIGINT, so it can cancel the solve cleanly"
    assert code == -9 and 1.0 <= elapsed < 8
    assert b"".join(seen).strip() == b"{}"


def test_several_runs_one_failure_interrupts_the_others(settings: Any, tmp_path: Path) -> None:
    """buildx.run with two processes: the first fails, the second gets SIGINT at once (it
    would otherwise run for a minute); output is told apart by index, exits in order."""
    marker = tmp_path / "interrupted"
    script = tmp_path / "fake-docker"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *y:bad*) sleep 1; echo "ERROR: failed to solve: boom"; exit 1 ;;\n'
        # A loop of builtins (no child for SIGINT to kill first), as buildx waits on its solve.
        f"  *) trap 'touch {marker}; exit 130' INT; echo started; while :; do :; done ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    settings.PORTAL_DOCKER_CLI = str(script)

    def spec(tag: str) -> buildx.BuildSpec:
        return _spec(tmp_path, tag)

    seen: dict[int, bytes] = {0: b"", 1: b""}
    exits: list[tuple[int, int]] = []

    def output(index: int, chunk: bytes) -> None:
        seen[index] += chunk

    started = time.monotonic()
    codes = buildx.run(
        [spec("bad"), spec("slow")], output, lambda: False, 5.0, lambda i, c: exits.append((i, c))
    )
    assert time.monotonic() - started < 10, "the slow run was stopped, not waited for"
    assert codes == [1, 130] and exits == [(0, 1), (1, 130)]
    assert marker.exists(), "the other run got SIGINT first"
    assert b"boom" in seen[0] and b"boom" not in seen[1] and b"started" in seen[1]


def test_buildx_output_is_read_with_descriptors_past_1024(tmp_path: Path, settings: Any) -> None:
    """A long-lived worker holds many descriptors (database, cache, channel connections):
    buildx's pipe may get a number select() refuses."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open 1100 descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        script = tmp_path / "docker"
        script.write_text("#!/bin/sh\necho '{}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        settings.PORTAL_DOCKER_CLI = str(script)
        spec = buildx.BuildSpec(
            context=tmp_path,
            dockerfile=tmp_path / "Dockerfile",
            platforms=["linux/amd64"],
            tags=["localhost:5000/x/y:z"],
            metadata_file=tmp_path / "m.json",
        )
        seen: list[bytes] = []
        assert buildx.run([spec], lambda _, chunk: seen.append(chunk), lambda: False, 1.0) == [0]
        assert b"".join(seen).strip() == b"{}"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
