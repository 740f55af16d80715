"""Turn decoded rawjson items into ordered build events: log lines in buildx's plain style,
per-step updates and per-platform progress (`LogLine`, `StepUpdate`, `PlatformProgress`).

No Django here: the worker feeds `ProgressTracker` from `builds.rawjson.StreamDecoder` and
stores and publishes the events.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from builds.rawjson import Item

__all__ = [
    "Event",
    "LogLine",
    "PlatformProgress",
    "ProgressTracker",
    "StepUpdate",
    "vertex_platform",
]


# --- vertex names -------------------------------------------------------------------------

# Operating systems a cross-compiling target may name ("->windows/amd64"); see below.
_KNOWN_OS = frozenset({"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris"})

# The bracketed prefix BuildKit's Dockerfile frontend gives a step:
#   [<platform>[-><target>] [<stage> ]<index>/<total>] <command>
# where the index is right-aligned to the width of the total ("[build  4/12]"), and
# "[<platform> internal] ..." for metadata loads. The platform is there only in
# multi-platform builds.
_PREFIX = re.compile(r"\[(?P<inner>[^\]]*)\]")
_PLATFORM = re.compile(
    r"(?P<platform>[a-z][a-z0-9]*(?:\([^)\s]*\))?/[a-z0-9_]+(?:/[a-z0-9.]+)?)"
    r"(?:->(?P<target>[a-z0-9_./()]+))?"
)
_COUNTER = re.compile(r"(?:(?P<stage>\S+) +)?(?P<index>\d+)/(?P<total>\d+)")


@dataclass(frozen=True)
class _StepName:
    platform: str | None
    stage: str
    index: int | None
    total: int | None


def _parse_vertex_name(name: str) -> _StepName:
    match = _PREFIX.match(name)
    if match is None:
        return _StepName(None, "", None, None)
    inner = match.group("inner").strip()
    platform = None
    head, _, rest = inner.partition(" ")
    plat = _PLATFORM.fullmatch(head)
    if plat is not None:
        platform = _target_platform(plat.group("platform"), plat.group("target"))
        stage_text = rest.strip()
        marker = head
    else:
        stage_text = inner
        marker = ""
    counter = _COUNTER.fullmatch(stage_text)
    if counter is None:
        return _StepName(platform, stage_text, None, None)
    stage = f"{marker} {counter.group('stage') or ''}".strip()
    return _StepName(platform, stage, int(counter.group("index")), int(counter.group("total")))


def _target_platform(base: str, target: str | None) -> str:
    # "[linux/amd64->arm64 build 3/5]" is a step running on linux/amd64 for the linux/arm64
    # image (a cross-compiling stage). The target is "arch[/variant]" when only the
    # architecture differs, a full "os/arch[/variant]" otherwise.
    base = re.sub(r"\([^)]*\)", "", base)
    if not target:
        return base
    target = re.sub(r"\([^)]*\)", "", target)
    if target.split("/", 1)[0] in _KNOWN_OS:
        return target
    return f"{base.split('/', 1)[0]}/{target}"


def vertex_platform(name: str) -> str | None:
    """The platform a vertex works for, from its name, or None for a shared vertex.

    "[linux/arm64 build 4/6] RUN ..." -> "linux/arm64"; "[linux/arm/v7 internal] load
    metadata for ..." -> "linux/arm/v7"; "[build 2/5] WORKDIR /src" -> None. For a
    cross-compiling step "[linux/amd64->arm64 build 3/5]" this is the target, "linux/arm64":
    the image the step's output goes into.
    """
    return _parse_vertex_name(name).platform


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line for the build log. stream: 0 progress/status text, 1 stdout, 2 stderr."""

    platform: str | None
    text: str
    stream: int


@dataclass(frozen=True)
class StepUpdate:
    """A platform's vertex changed state: "running", "done", "cached" or "error"."""

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
    """

    platform: str
    done: int
    total: int


Event = LogLine | StepUpdate | PlatformProgress

_TERMINAL = frozenset({"done", "cached", "error"})
MAX_PARTIAL_LINE_BYTES = 64 * 1024


@dataclass
class _Vertex:
    digest: str
    name: str = ""
    number: int = 0
    state: str = ""
    started: datetime | None = None  # of the latest run
    step: _StepName | None = None
    platform: str | None = None
    printed: bool = False


@dataclass
class _PlatformSteps:
    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> tuple[int, int]:
        done = sum(min(index, self.totals.get(stage, 0)) for stage, index in self.done.items())
        return done, sum(self.totals.values())


class ProgressTracker:
    """Turns decoded rawjson items into ordered events (see the module docstring).

    Lines follow buildx's plain progress: "#N <vertex name>" when a vertex starts, its logs
    and statuses as "#N <line>", then "#N DONE 1.2s", "#N CACHED", "#N ERROR: ..." or
    "#N CANCELED". N numbers vertexes in the order they first print. BuildKit repeats
    vertexes in later updates: each state change is reported once. An error is final; a
    finished vertex that BuildKit starts again (it does) is printed again, as buildx does.

    `errors` collects vertex errors and the messages of buildx's plain "ERROR: ..." lines,
    without duplicates; "context canceled" errors are left out, since they are what the
    other platforms' steps report when one step fails.

    Single-platform builds have no platform in vertex names: pass `default_platform` to
    attribute unprefixed vertexes to that platform.
    """

    def __init__(self, default_platform: str | None = None) -> None:
        self.default_platform = default_platform
        self.errors: list[str] = []
        self._plain_errors: list[str] = []
        self._vertexes: dict[str, _Vertex] = {}
        self._next_number = 1
        self._partial: dict[tuple[str, int], bytearray] = {}
        self._statuses_done: set[tuple[str, str]] = set()
        self._warnings: set[tuple[str, str]] = set()
        self._platforms: dict[str, _PlatformSteps] = {}
        self._reported: dict[str, tuple[int, int]] = {}

    @property
    def failure_reason(self) -> str | None:
        """The best one-line reason: buildx's ERROR line, else the first vertex error."""
        if self._plain_errors:
            return self._plain_errors[0]
        return self.errors[0] if self.errors else None

    def consume(self, item: Item) -> list[Event]:
        if isinstance(item, str):
            return self._text(item)
        events: list[Event] = []
        # Within one update: starts, then statuses and logs, then completions, so that a
        # step's output comes before its DONE line.
        # One update can list a vertex several times (done, then started again): the last
        # entry is the current one.
        latest: dict[str, dict[str, Any]] = {}
        for raw in _dicts(item.get("vertexes")):
            digest = str(raw.get("digest") or "")
            self._name_vertex(self._vertex(digest), raw.get("name"))
            latest[digest] = raw
        finished: list[tuple[_Vertex, str, dict[str, Any]]] = []
        for raw in latest.values():
            vertex, state = self._update_vertex(raw)
            if state == "running":
                self._start(vertex, events)
            elif state:
                self._header(vertex, events)
                finished.append((vertex, state, raw))
        for raw in _dicts(item.get("statuses")):
            self._status(raw, events)
        for raw in _dicts(item.get("logs")):
            self._log(raw, events)
        for vertex, state, raw in finished:
            self._finish(vertex, state, raw, events)
        for raw in _dicts(item.get("warnings")):
            self._warning(raw, events)
        self._progress_events(events)
        return events

    def flush(self) -> list[Event]:
        """Emit every buffered partial log line (call once the stream has ended)."""
        events: list[Event] = []
        for digest, stream in list(self._partial):
            self._flush_partial(digest, stream, events)
        return events

    # -- vertexes

    def _vertex(self, digest: str) -> _Vertex:
        vertex = self._vertexes.get(digest)
        if vertex is None:
            vertex = _Vertex(digest=digest, platform=self.default_platform)
            self._vertexes[digest] = vertex
        return vertex

    def _name_vertex(self, vertex: _Vertex, name: Any) -> None:
        if isinstance(name, str) and name and not vertex.name:
            vertex.name = name
            vertex.step = _parse_vertex_name(name)
            vertex.platform = vertex.step.platform or self.default_platform
            self._register_stage(vertex)

    def _update_vertex(self, raw: dict[str, Any]) -> tuple[_Vertex, str]:
        """Record what `raw` says about its vertex; return the new state to report, or ""."""
        vertex = self._vertex(str(raw.get("digest") or ""))
        started = _timestamp(raw.get("started"))
        if vertex.state == "error":
            return vertex, ""
        if raw.get("error"):
            state = "error"
        elif raw.get("cached"):
            state = "cached"
        elif raw.get("completed"):
            state = "done"
        elif started is not None:
            state = "running"
        else:
            state = ""  # known but not started yet: nothing to show
        if vertex.state in _TERMINAL:
            # BuildKit may run a finished vertex again (a new "started", no "completed"):
            # like buildx, print it again. Anything else about a finished vertex is a repeat.
            if state != "running" or started is None or started == vertex.started:
                return vertex, ""
            vertex.printed = False
        if started is not None and (vertex.started is None or state == "running"):
            vertex.started = started
        return vertex, "" if state == vertex.state else state

    def _header(self, vertex: _Vertex, events: list[Event]) -> None:
        if not vertex.printed and vertex.name:
            vertex.printed = True
            events.append(self._line(vertex, vertex.name))

    def _line(self, vertex: _Vertex, text: str, stream: int = 0) -> LogLine:
        if not vertex.number:
            vertex.number = self._next_number
            self._next_number += 1
        prefix = f"#{vertex.number}"
        return LogLine(vertex.platform, f"{prefix} {text}" if text else prefix, stream)

    def _start(self, vertex: _Vertex, events: list[Event]) -> None:
        self._header(vertex, events)
        vertex.state = "running"
        if vertex.platform is not None:
            events.append(StepUpdate(vertex.platform, vertex.digest, vertex.name, "running"))

    def _finish(
        self, vertex: _Vertex, state: str, raw: dict[str, Any], events: list[Event]
    ) -> None:
        for key in [key for key in self._partial if key[0] == vertex.digest]:
            self._flush_partial(*key, events)
        if state == "error":
            error = str(raw.get("error"))
            if error.endswith("context canceled") or error == "canceled":
                events.append(self._line(vertex, "CANCELED"))
            else:
                events.append(self._line(vertex, f"ERROR: {error}"))
                if error not in self.errors:
                    self.errors.append(error)
        elif state == "cached":
            events.append(self._line(vertex, "CACHED"))
        else:
            started = _timestamp(raw.get("started")) or vertex.started
            events.append(self._line(vertex, _done_text(started, raw.get("completed"))))
        vertex.state = state
        if vertex.platform is not None:
            events.append(StepUpdate(vertex.platform, vertex.digest, vertex.name, state))
        if state in ("done", "cached"):
            self._step_done(vertex)

    # -- per-platform progress

    def _register_stage(self, vertex: _Vertex) -> None:
        step = vertex.step
        if step is None or step.total is None or vertex.platform is None:
            return
        steps = self._platforms.setdefault(vertex.platform, _PlatformSteps())
        steps.totals[step.stage] = max(steps.totals.get(step.stage, 0), step.total)

    def _step_done(self, vertex: _Vertex) -> None:
        step = vertex.step
        if step is None or step.index is None or vertex.platform is None:
            return
        done = self._platforms[vertex.platform].done
        done[step.stage] = max(done.get(step.stage, 0), step.index)

    def _progress_events(self, events: list[Event]) -> None:
        for platform, steps in self._platforms.items():
            done, total = steps.snapshot()
            if self._reported.get(platform) != (done, total):
                self._reported[platform] = (done, total)
                events.append(PlatformProgress(platform, min(done, total), total))

    # -- statuses, logs, warnings, text

    def _status(self, raw: dict[str, Any], events: list[Event]) -> None:
        # Like buildx, label a status by its id ("transferring context:", "pushing layers");
        # print it once, when it completes, to keep the log short.
        label = str(raw.get("id") or raw.get("name") or "")
        completed = _timestamp(raw.get("completed"))
        digest = str(raw.get("vertex") or "")
        if not label or completed is None or (digest, label) in self._statuses_done:
            return
        self._statuses_done.add((digest, label))
        parts = [label]
        current, total = _int(raw.get("current")), _int(raw.get("total"))
        if total:
            parts.append(f"{_size(current)} / {_size(total)}")
        elif current:
            parts.append(_size(current))
        duration = _duration(_timestamp(raw.get("started")), completed)
        if duration is not None:
            parts.append(f"{duration:.1f}s")
        parts.append("done")
        vertex = self._vertex(digest)
        self._header(vertex, events)
        events.append(self._line(vertex, " ".join(parts)))

    def _log(self, raw: dict[str, Any], events: list[Event]) -> None:
        digest = str(raw.get("vertex") or "")
        stream = _int(raw.get("stream")) or 1
        data = _b64(raw.get("data"))
        if not data:
            return
        buffer = self._partial.setdefault((digest, stream), bytearray())
        buffer += data
        newline = buffer.rfind(b"\n")
        if newline >= 0:
            complete = bytes(buffer[:newline])
            del buffer[: newline + 1]
            vertex = self._vertex(digest)
            self._header(vertex, events)
            for line in complete.split(b"\n"):
                events.append(self._line(vertex, _clean_line(line), stream))
        # Of a partial line keep only the last carriage-return segment (progress bars), but
        # not a lone trailing "\r" that may be the first half of "\r\n".
        cr = buffer.rfind(b"\r", 0, max(len(buffer) - 1, 0))
        if cr >= 0:
            del buffer[: cr + 1]
        if not buffer:
            del self._partial[(digest, stream)]
        elif len(buffer) > MAX_PARTIAL_LINE_BYTES:
            self._flush_partial(digest, stream, events)

    def _flush_partial(self, digest: str, stream: int, events: list[Event]) -> None:
        buffer = self._partial.pop((digest, stream), None)
        if buffer:
            vertex = self._vertex(digest)
            self._header(vertex, events)
            events.append(self._line(vertex, _clean_line(bytes(buffer)), stream))

    def _warning(self, raw: dict[str, Any], events: list[Event]) -> None:
        digest = str(raw.get("vertex") or "")
        short = _b64(raw.get("short")).decode("utf-8", errors="replace").strip()
        if not short or (digest, short) in self._warnings:
            return
        self._warnings.add((digest, short))
        events.append(self._line(self._vertex(digest), f"WARNING: {short}", 2))

    def _text(self, text: str) -> list[Event]:
        stripped = text.strip()
        if stripped.startswith("ERROR:"):
            message = stripped.removeprefix("ERROR:").strip()
            if message and message not in self._plain_errors:
                self._plain_errors.append(message)
                if message not in self.errors:
                    self.errors.append(message)
        return [LogLine(None, text, 2)]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        # Go prints up to 9 fractional digits; older Pythons take at most 6.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value)
        try:
            return datetime.fromisoformat(trimmed)
        except ValueError:
            return None


def _duration(started: datetime | None, completed: datetime | None) -> float | None:
    if started is None or completed is None:
        return None
    try:
        return max((completed - started).total_seconds(), 0.0)
    except TypeError:  # naive and aware timestamps mixed
        return None


def _done_text(started: datetime | None, completed: Any) -> str:
    duration = _duration(started, _timestamp(completed))
    return "DONE" if duration is None else f"DONE {duration:.1f}s"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count}B"
    size = float(count)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.2f}{unit}"


def _clean_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    if text.endswith("\r"):
        text = text[:-1]
    return text.rsplit("\r", 1)[-1]


def _b64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""
