"""Helpers for end-to-end tests that talk to the real registry and engine directly,
independent of the portal's own code."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
import uuid
from typing import Any

REGISTRY = os.environ.get("PORTAL_TEST_REGISTRY", "localhost:5000")
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def unique_image(name: str) -> str:
    return f"{REGISTRY}/e2e/{name}-{uuid.uuid4().hex[:8]}"


def registry_index(repository: str, reference: str) -> tuple[str, dict[str, Any]]:
    """(digest, index JSON) straight from the registry, independent of the portal's code."""
    host, path = repository.split("/", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{path}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return "sha256:" + hashlib.sha256(body).hexdigest(), json.loads(body)


def run_image(reference: str, platform: str) -> str:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", f"--platform={platform}", reference],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


EXPECTED_OUTPUT = {
    "linux/amd64": "Hello from linux/amd64",
    "linux/arm64": "Hello from linux/arm64",
    "linux/arm/v7": "Hello from linux/arm",
}
