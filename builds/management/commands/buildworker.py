"""`manage.py buildworker`: run builds in a separate process (scale-out configuration).
Start as many as the builder nodes can carry; they never claim the same build."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from builds import migrating
from builds.worker import default_worker_id, run_forever, work_once


class Command(BaseCommand):
    help = "Claim and run queued builds until stopped (SIGTERM/SIGINT finish the loop)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run at most one build, then exit")
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between queue polls")

    def handle(self, *args: Any, once: bool, poll: float, **options: Any) -> None:
        migrating.migrate()  # a worker may start before (or with) the portal after an upgrade
        if once:
            build = work_once(default_worker_id())
            self.stdout.write(
                f"ran build {build.pk}: {build.state}" if build else "no queued build"
            )
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        run_forever(stop, poll=poll)
