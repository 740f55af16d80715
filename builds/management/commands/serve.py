"""`manage.py serve`: migrate, register the local builder node, serve HTTP + websockets (daphne)
and, in the embedded configuration, run the build worker inside the same process."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Run the Crossport portal (migrations, web server and, by default, the build worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="do not run builds in this process"
        )

    def handle(self, *args: Any, host: str, port: int, no_worker: bool, **options: Any) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError as exc:
            raise CommandError(f"--host must be an IP address, not {host!r}") from exc
        if not 0 < port < 65536:
            raise CommandError("--port must be 1-65535")
        # daphne.server installs the asyncio Twisted reactor; import it before anything else
        # imports Twisted.
        from daphne.server import Server, twisted_loop

        from builds import events, migrating
        from builds.nodes import ensure_local_node
        from builds.worker import run_forever

        # Before the application exists: whitenoise indexes STATIC_ROOT when it is made.
        migrating.migrate(collect_static=True)  # under a lock: several may start at once
        application = import_string(settings.ASGI_APPLICATION)  # the one config, by its setting
        ensure_local_node()

        stop = threading.Event()
        worker = threading.Thread(
            target=run_forever, args=(stop,), name="build-worker", daemon=True
        )
        embedded = settings.PORTAL_EMBEDDED_WORKER and not no_worker

        interface = str(address).replace(":", r"\:")
        shown = f"[{address}]" if address.version == 6 else str(address)

        def ready() -> None:
            # The worker starts once the event loop runs: its events go through that loop.
            if embedded and not worker.is_alive():
                from twisted.internet import reactor

                def start_worker() -> None:
                    events.set_server_loop(twisted_loop)
                    worker.start()

                reactor.callWhenRunning(start_worker)
            self.stdout.write(f"Crossport serving on http://{shown}:{port}/", ending="\n")
            self.stdout.flush()

        try:
            Server(
                application=application,
                # A crowd reconnecting at once (a deploy, a network blip) must queue, not be
                # refused: a deep accept backlog, and time for each websocket's handshake (its
                # token or session is looked up in the database) on a busy machine.
                endpoints=[f"tcp:port={port}:interface={interface}:backlog=1024"],
                websocket_handshake_timeout=30,
                signal_handlers=True,
                ready_callable=ready,
            ).run()
        finally:
            stop.set()
            events.set_server_loop(None)
            if worker.is_alive():
                worker.join(timeout=5)
