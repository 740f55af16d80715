"""Crossport sample: prove the image's architecture and that each kind of package was installed.

First line: platform.machine() (x86_64, aarch64 or armv7l). Second line: JSON made by orjson,
a Rust extension, so it only works if the wheel for this very architecture was installed; it
also names docopt, a pure-Python package published only as an sdist, which the build turns into
a wheel once for every platform.
"""

import platform

import docopt
import orjson

machine = platform.machine()
print(machine)
print(
    orjson.dumps(
        {"machine": machine, "orjson": orjson.__version__, "docopt": docopt.__version__}
    ).decode()
)
