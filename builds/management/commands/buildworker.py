"""`manage.py buildworker`: run builds in a separate process (scale-out configuration).
Start as many as the builder nodes can carry; they never claim the same build."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from builds import migrating
from builds.worker import default_worker_id, run_forever, work_once

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Claim and run queued builds until stopped. SIGTERM or SIGINT: claim no more, let a "
        "running build finish within PORTAL_WORKER_DRAIN_SECONDS, then hand it back to the "
        "queue (another worker starts it again) and exit 0; a second signal hands back at once."
    )

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
        stop, handback = threading.Event(), threading.Event()
        drain = settings.PORTAL_WORKER_DRAIN_SECONDS

        def stopping(signum: int, frame: Any) -> None:
            if stop.is_set():  # a second signal: no more waiting
                handback.set()
                return
            stop.set()
            log.info("stopping: no new builds; a running one has %s s to finish", drain)
            timer = threading.Timer(drain, handback.set)
            timer.daemon = True
            timer.start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stopping)
        run_forever(stop, poll=poll, handback=handback)
