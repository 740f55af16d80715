"""Reading rendered Dockerfiles in tests with the official parser (the `dockerfile` package)."""

from __future__ import annotations

import dockerfile

from lang_plugins.dockerfile import dockerfile_unquote


def parse(source: str) -> list[dockerfile.Command]:
    return list(dockerfile.parse_string(source))


def arg_values(commands: list[dockerfile.Command]) -> dict[str, str]:
    """ARG name -> unquoted default, for ARGs of the form NAME="..."."""
    values = {}
    for command in commands:
        if command.cmd == "ARG":
            for token in command.value:
                name, sep, value = token.partition("=")
                if sep:
                    values[name] = dockerfile_unquote(value)
    return values
