"""A worker's lease on one running build: heartbeats, stop signals, the conditional last write.

Every write is conditional on (state='running', worker=me), so a build that the reaper already
failed, or that another worker holds, is never revived by a slow worker. The heartbeat is also
where a build learns that it should stop: a cancel request, the build time limit, or its
worker stopping (then the build goes back to the queue).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from builds.models import Build, BuildPlatform

HEARTBEAT_EVERY = 2.0  # seconds between lease renewals (and cancel checks)


class LeaseLost(Exception):
    """The build is no longer ours (reaped or finished elsewhere)."""


class Lease:
    def __init__(
        self, build: Build, worker_id: str, handback: threading.Event | None = None
    ) -> None:
        self.build = build
        self.worker_id = worker_id
        # Set when the worker is stopping and its drain time is up: the build stops as if
        # cancelled, then goes back to the queue (`requeue`) instead of ending.
        self.handback = handback
        self.cancel = False
        self.timed_out = False
        self.handing_back = False
        self._last_beat = 0.0
        self._started = time.monotonic()

    def _mine(self) -> QuerySet[Build]:
        return Build.objects.filter(
            pk=self.build.pk, state=Build.State.RUNNING, worker=self.worker_id
        )

    def renew(self, force: bool = False) -> bool:
        """Renew the lease (at most every HEARTBEAT_EVERY seconds unless forced); True when
        the build should stop. Raises LeaseLost when the build is no longer ours."""
        if self.handback is not None and self.handback.is_set():  # in-process: checked each time
            self.handing_back = self.cancel = True
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_EVERY:
            return self.cancel
        self._last_beat = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise LeaseLost()
        requested = Build.objects.filter(pk=self.build.pk, cancel_requested=True).exists()
        self.cancel = requested or self.handing_back
        if now - self._started > settings.PORTAL_BUILD_TIMEOUT_SECONDS:
            self.timed_out = self.cancel = True
        return self.cancel

    def requeue(self) -> bool:
        """Give the build back to the queue as if never claimed (another worker plans and runs
        it from the start); False when it is no longer ours."""
        with transaction.atomic():
            if not self._mine().update(
                state=Build.State.QUEUED,
                worker="",
                heartbeat_at=None,
                started_at=None,
                node=None,
                plan={},
                reason="",
            ):
                return False
            self.build.platform_states.update(
                state=BuildPlatform.State.PENDING,
                node=None,
                method="",
                done=0,
                total=0,
                digest="",
                started_at=None,
                finished_at=None,
                reason="",
                failed_step="",
                arch_check={},
                step="",
                size_bytes=None,
                steps_cached=0,
                steps_run=0,
            )
        return True

    def end(self, **fields: Any) -> bool:
        """Write the verdict if the build is still ours; False when the reaper was first."""
        return bool(self._mine().update(finished_at=timezone.now(), **fields))
