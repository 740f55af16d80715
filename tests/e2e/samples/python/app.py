"""Crossport sample: prove the image's architecture and that a compiled wheel loads.

First line: platform.machine() (x86_64, aarch64 or armv7l). Second line: JSON made by orjson,
a Rust extension, so it only works if the wheel for this very architecture was installed.
"""

import platform

import orjson

machine = platform.machine()
print(machine)
print(orjson.dumps({"machine": machine, "orjson": orjson.__version__}).decode())
