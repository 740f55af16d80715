"""Emulators on the local node: a lost one (as after a reboot) is detected, "Install emulators"
runs the binfmt installer image on the node and the re-check shows it back; with repair on,
a check reinstalls it by itself. Uses linux/s390x, which no other test builds for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-s390x")


@pytest.fixture
def s390x_handler(stack: None) -> Iterator[str]:
    """The host's s390x registration, put back as it was whatever the test does."""
    if not HANDLER.exists():
        pytest.fail("teststack registers qemu-s390x; it is missing")
    fields = dict(
        line.split(" ", 1) for line in HANDLER.read_text().splitlines()[1:] if " " in line
    )
    magic = "".join(f"\\x{fields['magic'][i : i + 2]}" for i in range(0, len(fields["magic"]), 2))
    mask = "".join(f"\\x{fields['mask'][i : i + 2]}" for i in range(0, len(fields["mask"]), 2))
    line = f":qemu-s390x:M:{fields.get('offset', '0')}:{magic}:{mask}:{fields['interpreter']}:FPC"
    yield line
    if not HANDLER.exists():
        Path("/proc/sys/fs/binfmt_misc/register").write_text(line)


def _lose() -> None:
    HANDLER.write_text("-1")
    assert not HANDLER.exists()


def test_lost_emulators_are_detected_installed_and_repaired(
    portal: Any, s390x_handler: str
) -> None:
    token = portal.manage("portal_user", "ops", "--team", "ops", "--staff").strip().splitlines()[-1]
    _, listing = portal.api("GET", "/api/v1/nodes", token)
    local = next(n for n in listing["nodes"] if n["name"] == "local")
    base = f"/api/v1/nodes/{local['id']}"

    status, answer = portal.api("POST", f"{base}/emulators", token, {"platforms": ["s390x"]})
    assert status == 200, answer
    assert answer["command"].startswith("docker run --privileged --rm --network=none ")
    assert answer["command"].endswith(" --install s390x")
    assert "qemu-s390x" in answer["output"]
    assert "linux/s390x" in answer["node"]["emulated_platforms"]

    _lose()  # what a reboot does to a registration nothing re-creates
    status, node = portal.api("POST", f"{base}/check", token)
    assert "linux/s390x" not in node["emulated_platforms"]
    assert node["missing_emulators"] == ["linux/s390x"]
    assert "emulators missing" in node["last_error"]

    status, answer = portal.api("POST", f"{base}/emulators", token, {"platforms": ["linux/s390x"]})
    assert status == 200, answer
    assert "installing: s390x OK" in answer["output"]
    flags = next(ln for ln in HANDLER.read_text().splitlines() if ln.startswith("flags:"))
    assert "F" in flags.split(":", 1)[1], "registered with the F flag, as the real binfmt does"
    assert answer["node"]["missing_emulators"] == [] and answer["node"]["last_error"] == ""

    status, node = portal.api("PATCH", base, token, {"repair_emulators": True})
    assert status == 200 and node["enabled"], node
    _lose()
    status, node = portal.api("POST", f"{base}/check", token)
    assert HANDLER.exists(), "the check reinstalled the lost emulator"
    assert "linux/s390x" in node["emulated_platforms"] and node["missing_emulators"] == []
    portal.api("PATCH", base, token, {"repair_emulators": False})
