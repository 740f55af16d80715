"""Turn decoded rawjson items into ordered build events: log lines in buildx's plain style,
per-step updates and per-platform progress (`LogLine`, `StepUpdate`, `PlatformProgress`).

No Django here: the worker feeds `ProgressTracker` from `builds.rawjson.StreamDecoder` and
stores and publishes the events (defined in `builds.stepevents`, and re-exported here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from builds import rawfields
from builds.rawjson import Item
from builds.stepevents import Event, LogLine, PlatformProgress, StepFailure, StepUpdate
from builds.vertexnames import StepName, parse_vertex_name

__all__ = [
    "Event",
    "LogLine",
    "PlatformProgress",
    "ProgressTracker",
    "StepFailure",
    "StepUpdate",
]


_TERMINAL = frozenset({"done", "cached", "error"})
CACHE_IMPORT = "importing cache manifest from "  # the vertex of --cache-from
MAX_PARTIAL_LINE_BYTES = 64 * 1024
OUTPUT_KEPT = 400  # a step's last output lines kept for its failure headline


@dataclass
class _Vertex:
    digest: str
    name: str = ""
    number: int = 0
    state: str = ""
    started: datetime | None = None  # of the latest run
    step: StepName | None = None
    platform: str | None = None
    printed: bool = False
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_KEPT))


@dataclass
class _PlatformSteps:
    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    finished: dict[str, bool] = field(default_factory=dict)  # step vertex -> came from cache

    def snapshot(self) -> tuple[int, int, int, int]:
        done = sum(min(index, self.totals.get(stage, 0)) for stage, index in self.done.items())
        cached = sum(self.finished.values())
        return done, sum(self.totals.values()), cached, len(self.finished) - cached


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
        self.failures: list[StepFailure] = []
        self._plain_errors: list[str] = []
        self._vertexes: dict[str, _Vertex] = {}
        self._next_number = 1
        self._partial: dict[tuple[str, int], bytearray] = {}
        self._statuses_done: set[tuple[str, str]] = set()
        self._warnings: set[tuple[str, str]] = set()
        self._platforms: dict[str, _PlatformSteps] = {}
        self._reported: dict[str, tuple[int, int, int, int]] = {}

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
        for raw in rawfields.dicts(item.get("vertexes")):
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
        for raw in rawfields.dicts(item.get("statuses")):
            self._status(raw, events)
        for raw in rawfields.dicts(item.get("logs")):
            self._log(raw, events)
        for vertex, state, raw in finished:
            self._finish(vertex, state, raw, events)
        for raw in rawfields.dicts(item.get("warnings")):
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
            vertex.step = parse_vertex_name(name)
            vertex.platform = vertex.step.platform or self.default_platform
            self._register_stage(vertex)

    def _update_vertex(self, raw: dict[str, Any]) -> tuple[_Vertex, str]:
        """Record what `raw` says about its vertex; return the new state to report, or ""."""
        vertex = self._vertex(str(raw.get("digest") or ""))
        started = rawfields.timestamp(raw.get("started"))
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
                state = "canceled"
            elif vertex.name.startswith(CACHE_IMPORT):
                # No registry cache yet (a project's first build): BuildKit goes on without it.
                events.append(self._line(vertex, f"no cache to import: {error}"))
                state = "done"
            else:
                events.append(self._line(vertex, f"ERROR: {error}"))
                if error not in self.errors:
                    self.errors.append(error)
                self._failed(vertex, error)
        elif state == "cached":
            events.append(self._line(vertex, "CACHED"))
        else:
            started = rawfields.timestamp(raw.get("started")) or vertex.started
            events.append(self._line(vertex, rawfields.done_text(started, raw.get("completed"))))
        vertex.state = "error" if state == "canceled" else state
        if vertex.platform is not None:
            events.append(StepUpdate(vertex.platform, vertex.digest, vertex.name, state))
        if state in ("done", "cached"):
            self._step_done(vertex, cached=state == "cached")

    def _failed(self, vertex: _Vertex, error: str) -> None:
        steps = self._platforms.get(vertex.platform or "")
        self.failures.append(
            StepFailure(
                platform=vertex.platform,
                name=vertex.name,
                number=vertex.number,
                step=vertex.step,
                error=error,
                output=tuple(vertex.output),
                stage_totals=dict(steps.totals) if steps else {},
            )
        )

    # -- per-platform progress

    def _register_stage(self, vertex: _Vertex) -> None:
        step = vertex.step
        if step is None or step.total is None or vertex.platform is None:
            return
        steps = self._platforms.setdefault(vertex.platform, _PlatformSteps())
        steps.totals[step.stage] = max(steps.totals.get(step.stage, 0), step.total)

    def _step_done(self, vertex: _Vertex, cached: bool) -> None:
        step = vertex.step
        if step is None or step.index is None or vertex.platform is None:
            return
        steps = self._platforms[vertex.platform]
        steps.done[step.stage] = max(steps.done.get(step.stage, 0), step.index)
        if not vertex.name.partition("] ")[2].startswith("FROM "):
            # A step run again after coming from cache counts as run.
            steps.finished[vertex.digest] = cached and steps.finished.get(vertex.digest, True)

    def _progress_events(self, events: list[Event]) -> None:
        for platform, steps in self._platforms.items():
            done, total, cached, ran = steps.snapshot()
            if self._reported.get(platform) != (done, total, cached, ran):
                self._reported[platform] = (done, total, cached, ran)
                events.append(PlatformProgress(platform, min(done, total), total, cached, ran))

    # -- statuses, logs, warnings, text

    def _status(self, raw: dict[str, Any], events: list[Event]) -> None:
        # Like buildx, label a status by its id ("transferring context:", "pushing layers");
        # print it once, when it completes, to keep the log short.
        label = str(raw.get("id") or raw.get("name") or "")
        completed = rawfields.timestamp(raw.get("completed"))
        digest = str(raw.get("vertex") or "")
        if not label or completed is None or (digest, label) in self._statuses_done:
            return
        self._statuses_done.add((digest, label))
        parts = [label]
        current, total = rawfields.as_int(raw.get("current")), rawfields.as_int(raw.get("total"))
        if total:
            parts.append(f"{rawfields.size_text(current)} / {rawfields.size_text(total)}")
        elif current:
            parts.append(rawfields.size_text(current))
        duration = rawfields.duration(rawfields.timestamp(raw.get("started")), completed)
        if duration is not None:
            parts.append(f"{duration:.1f}s")
        parts.append("done")
        vertex = self._vertex(digest)
        self._header(vertex, events)
        events.append(self._line(vertex, " ".join(parts)))

    def _log(self, raw: dict[str, Any], events: list[Event]) -> None:
        digest = str(raw.get("vertex") or "")
        stream = rawfields.as_int(raw.get("stream")) or 1
        data = rawfields.b64(raw.get("data"))
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
                events.append(self._output(vertex, rawfields.clean_line(line), stream))
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
            events.append(self._output(vertex, rawfields.clean_line(bytes(buffer)), stream))

    def _output(self, vertex: _Vertex, text: str, stream: int) -> LogLine:
        vertex.output.append(text)
        return self._line(vertex, text, stream)

    def _warning(self, raw: dict[str, Any], events: list[Event]) -> None:
        digest = str(raw.get("vertex") or "")
        short = rawfields.b64(raw.get("short")).decode("utf-8", errors="replace").strip()
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
