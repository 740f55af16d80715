"""`manage.py checknodes`: check every builder node now and print what was found (JSON)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from builds.models import BuilderNode
from builds.nodes import check_node, ensure_local_node


class Command(BaseCommand):
    help = "Health-check all builder nodes now (registers the local engine if none exists)."

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_local_node()
        report = []
        for node in BuilderNode.objects.all():
            check_node(node)
            report.append(
                {
                    "name": node.name,
                    "endpoint": node.endpoint,
                    "reachable": node.reachable,
                    "engine_version": node.engine_version,
                    "buildkit_version": node.buildkit_version,
                    "native_platforms": node.native_platforms,
                    "emulated_platforms": node.emulated_platforms,
                    "last_error": node.last_error,
                }
            )
        self.stdout.write(json.dumps(report, indent=2))
