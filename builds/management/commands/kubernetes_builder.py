"""Print the commands that make a multi-node builder on a Kubernetes cluster (buildx's
`kubernetes` driver, one BuildKit deployment per CPU architecture, each pinned to nodes of its
architecture), for an operator to run where kubectl reaches the cluster. See the README's
*Scaling out*."""

from __future__ import annotations

import shlex
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from builds.builders import kubernetes_commands
from portal.grammar import InvalidValue


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the builder's name (strategy builder:<name>)")
        parser.add_argument("platforms", nargs="+", help="e.g. linux/amd64 linux/arm64")
        parser.add_argument("--namespace", default="crossport")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            commands = kubernetes_commands(
                options["name"], options["platforms"], options["namespace"]
            )
        except InvalidValue as exc:
            raise CommandError(str(exc)) from None
        for command in commands:
            self.stdout.write(shlex.join(["docker", *command]))
        self.stdout.write(
            shlex.join(["docker", "buildx", "inspect", "--bootstrap", "--", options["name"]])
        )
