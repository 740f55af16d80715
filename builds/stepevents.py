"""The events `builds.progress.ProgressTracker` turns a rawjson stream into: log lines, step
updates, per-platform progress, and failed steps (for `builds.headline`)."""

from __future__ import annotations

from dataclasses import dataclass

from builds.vertexnames import StepName


@dataclass(frozen=True)
class LogLine:
    """One line for the build log. stream: 0 progress/status text, 1 stdout, 2 stderr."""

    platform: str | None
    text: str
    stream: int


@dataclass(frozen=True)
class StepUpdate:
    """A platform's vertex changed state: "running", "done", "cached", "error" or "canceled"
    (stopped because something else failed, or on request)."""

    platform: str
    vertex: str
    name: str
    state: str


@dataclass(frozen=True)
class PlatformProgress:
    """Finished Dockerfile steps of one platform, for its progress bar.

    total is the sum of the step counts ("4/6" -> 6) of every stage seen for the platform so
    far, so it can grow while stages appear. done adds up, per stage, the highest step that
    finished or came from cache: each step builds on the one before, and the first steps
    of a stage that all platforms share (cross-compiling) run once, under the name of one
    platform only. 0 <= done <= total.

    cached and ran count the platform's finished Dockerfile steps that came from cache (the
    node's, or the registry's) and that ran; not FROM (a base image is pulled, not built) nor
    BuildKit's internal vertexes.
    """

    platform: str
    done: int
    total: int
    cached: int = 0
    ran: int = 0


@dataclass(frozen=True)
class StepFailure:
    """A vertex that failed on its own (not canceled): BuildKit's error, the step's last
    output lines and its platform's step counts per stage, for `builds.headline`."""

    platform: str | None
    name: str
    number: int  # the "#N" of the step's log lines
    step: StepName | None
    error: str
    output: tuple[str, ...]
    stage_totals: dict[str, int]


Event = LogLine | StepUpdate | PlatformProgress
