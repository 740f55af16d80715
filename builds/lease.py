"""A worker's lease on one running build: heartbeats, stop signals, the conditional last write.

Every write is conditional on (state='running', worker=me), so a build that the reaper already
failed, or that another worker holds, is never revived by a slow worker. The heartbeat is also
where a build learns that it should stop: a cancel request, or the build time limit.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from builds.models import Build

HEARTBEAT_EVERY = 2.0  # seconds between lease renewals (and cancel checks)


class LeaseLost(Exception):
    """The build is no longer ours (reaped or finished elsewhere)."""


class Lease:
    def __init__(self, build: Build, worker_id: str) -> None:
        self.build = build
        self.worker_id = worker_id
        self.cancel = False
        self.timed_out = False
        self._last_beat = 0.0
        self._started = time.monotonic()

    def _mine(self) -> QuerySet[Build]:
        return Build.objects.filter(
            pk=self.build.pk, state=Build.State.RUNNING, worker=self.worker_id
        )

    def renew(self, force: bool = False) -> bool:
        """Renew the lease (at most every HEARTBEAT_EVERY seconds unless forced); True when
        the build should stop. Raises LeaseLost when the build is no longer ours."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_EVERY:
            return self.cancel
        self._last_beat = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise LeaseLost()
        self.cancel = Build.objects.filter(pk=self.build.pk, cancel_requested=True).exists()
        if now - self._started > settings.PORTAL_BUILD_TIMEOUT_SECONDS:
            self.timed_out = self.cancel = True
        return self.cancel

    def end(self, **fields: Any) -> bool:
        """Write the verdict if the build is still ours; False when the reaper was first."""
        return bool(self._mine().update(finished_at=timezone.now(), **fields))
