"""Why a build stops: the reason its headline shows and whose fault it is."""

from __future__ import annotations

from builds.models import Build


class BuildFailed(Exception):
    def __init__(self, reason: str, fault: str = Build.Fault.USER) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fault = fault
