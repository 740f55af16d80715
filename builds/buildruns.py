"""One build's buildx runs: start them together, follow their output into the log and the
platform rows, push again after a registry hiccup, and say which run failed and why.

A plan step is one platform on one node; the steps of one node form one run (one
``docker buildx build --platform=a,b``). Each run has its own rawjson decoder and progress
tracker, since runs interleave their output.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

import lang_plugins
from builds import buildx, credentials, events, headline
from builds.backend import Backend
from builds.buildlog import BuildLog, Line
from builds.lease import Lease
from builds.models import Build, BuilderNode, BuildPlatform
from builds.planner import Step
from builds.progress import LogLine as RawLine
from builds.progress import PlatformProgress, ProgressTracker, StepUpdate
from builds.rawjson import StreamDecoder

# A registry's transient server error while pushing (not the project's fault).
PUSH_RETRIES = 2
REGISTRY_5XX = re.compile(r"unexpected status from \w+ request to \S+: 50[0-4]\b")
STATUS_EVERY = 0.5  # at most this often a status event while platforms make progress


@dataclass
class RunStream:
    """One buildx run of a build: its plan steps, its spec, its own decoder and tracker."""

    steps: list[Step]
    spec: buildx.BuildSpec
    decoder: StreamDecoder = field(default_factory=StreamDecoder)
    tracker: ProgressTracker = field(default_factory=ProgressTracker)


class BuildxRuns:
    def __init__(
        self,
        build: Build,
        platforms: dict[str, BuildPlatform],
        nodes: dict[int, BuilderNode],
        log: BuildLog,
        backend: Backend,
        lease: Lease,
    ) -> None:
        self.build = build
        self.platforms = platforms
        self.nodes = nodes
        self.log = log
        self.backend = backend
        self.lease = lease
        self.streams: list[RunStream] = []
        self._last_status = 0.0

    def add(self, spec: buildx.BuildSpec, steps: list[Step]) -> None:
        # Single-platform runs name no platform in their steps.
        only = spec.platforms[0] if len(spec.platforms) == 1 else None
        self.streams.append(RunStream(steps, spec, tracker=ProgressTracker(only)))

    @property
    def specs(self) -> list[buildx.BuildSpec]:
        return [stream.spec for stream in self.streams]

    # output ---------------------------------------------------------------------------
    def on_output(self, index: int, chunk: bytes) -> None:
        self._consume(index, self.streams[index].decoder.feed_bytes(chunk))

    def _consume(self, index: int, items: list[dict[str, object] | str]) -> None:
        lines: list[Line] = []
        changed = False
        for item in items:
            for event in self.streams[index].tracker.consume(item):
                if isinstance(event, RawLine):
                    lines.append((event.platform, event.stream, event.text))
                elif isinstance(event, (StepUpdate, PlatformProgress)):
                    changed |= self._progress(event)
        self.log.write(lines)
        if changed and time.monotonic() - self._last_status > STATUS_EVERY:
            self._last_status = time.monotonic()
            events.publish_status(self.build)

    def _progress(self, event: StepUpdate | PlatformProgress) -> bool:
        row = self.platforms.get(event.platform)
        if row is None:
            return False
        fields: dict[str, object] = {}
        if isinstance(event, PlatformProgress):
            fields = {
                "done": min(event.done, event.total),
                "total": event.total,
                "steps_cached": event.cached,
                "steps_run": event.ran,
            }
        if row.state == BuildPlatform.State.PENDING:
            fields["state"] = BuildPlatform.State.RUNNING
        if isinstance(event, StepUpdate) and event.state == "error":
            fields["state"] = BuildPlatform.State.FAILED  # "canceled" waits for the verdict
        if isinstance(event, StepUpdate) and event.state == "running":
            fields["step"] = event.name[:300]
        fields = {k: v for k, v in fields.items() if getattr(row, k) != v}
        if not fields:
            return False
        for key, value in fields.items():
            setattr(row, key, value)
        row.save(update_fields=list(fields))
        return True

    # running --------------------------------------------------------------------------
    def run(self, which: list[int]) -> list[int]:
        """Run the given runs (indexes into streams) at once; their exit codes in that order."""
        for index in which:
            stream = self.streams[index]
            argv = stream.spec.argv()[1:]
            node = stream.steps[0].node
            self.log.say(f"running docker buildx build on node {node} (argv: {' '.join(argv)})")
            for step in stream.steps:
                row = self.platforms[step.platform]
                row.started_at, row.finished_at, row.reason = timezone.now(), None, ""
                row.save(update_fields=["started_at", "finished_at", "reason"])
        codes = self.backend.build(
            [self.streams[i].spec for i in which],
            lambda n, chunk: self.on_output(which[n], chunk),
            self.lease.renew,
            float(settings.PORTAL_CANCEL_GRACE_SECONDS),
            lambda n, _code: self.run_ended(which[n]),
        )
        for index in which:
            stream = self.streams[index]
            self._consume(index, stream.decoder.close())
            self.log.write(
                [
                    (e.platform, e.stream, e.text)
                    for e in stream.tracker.flush()
                    if isinstance(e, RawLine)
                ]
            )
        headlines = {h.platform: h for i in which for h in self.headlines(i)}
        first = next(iter(headlines.values()), None)
        for index, code in zip(which, codes, strict=True):
            stream = self.streams[index]
            for step in stream.steps:
                row = self.platforms[step.platform]
                row.finished_at = row.finished_at or timezone.now()
                if code != 0:
                    self._platform_verdict(row, step, code, headlines.get(step.platform), first)
                    row.reason = self.log.redact(row.reason)  # output may hold a secret
                row.save(update_fields=["finished_at", "reason", "state", "failed_step"])
        return codes

    def _platform_verdict(
        self,
        row: BuildPlatform,
        step: Step,
        code: int,
        own: headline.Headline | None,
        first: headline.Headline | None,
    ) -> None:
        """A platform of a failed run: failed at its own step, or stopped (cancelled) because
        another platform failed or the build was cancelled."""
        if own is not None:
            row.state, row.failed_step = BuildPlatform.State.FAILED, own.step
            row.reason = f"on node {step.node}: {own.line or own.text}"
        elif self.lease.timed_out:
            row.state, row.reason = BuildPlatform.State.FAILED, "stopped: the build timed out"
        elif self.lease.cancel:
            row.state, row.reason = BuildPlatform.State.CANCELLED, "cancelled on request"
        elif first is not None:
            row.state = BuildPlatform.State.CANCELLED
            row.reason = f"stopped when {first.platform or 'another step'} failed"
        else:
            errors = self.streams[self._stream_of(step)].tracker.errors
            row.state = BuildPlatform.State.FAILED
            row.reason = f"on node {step.node}: " + (
                errors[-1] if errors else f"buildx exited with status {code}"
            )

    def _stream_of(self, step: Step) -> int:
        return next(i for i, s in enumerate(self.streams) if step in s.steps)

    def headlines(self, index: int) -> list[headline.Headline]:
        """The failures of one run that were Dockerfile steps, first per platform."""
        try:
            patterns = lang_plugins.get_plugin(self.build.project.language).error_patterns
        except KeyError:
            patterns = ()
        found: dict[str | None, headline.Headline] = {}
        for failure in self.streams[index].tracker.failures:
            lifted = headline.headline(failure, patterns, self.build.dockerfile)
            if lifted.step and failure.platform not in found:
                found[failure.platform] = lifted
        return list(found.values())

    def run_ended(self, index: int) -> None:
        """The timeline: each run's platforms end when that run's buildx does."""
        now = timezone.now()
        steps = self.streams[index].steps
        for step in steps:
            self.platforms[step.platform].finished_at = now
        BuildPlatform.objects.filter(pk__in=[self.platforms[s.platform].pk for s in steps]).update(
            finished_at=now
        )

    def _registry_hiccup(self, index: int, since: int) -> bool:
        """Whether a run's last attempt (errors after index `since`) failed on a registry 5xx."""
        errors = " ".join(self.streams[index].tracker.errors[since:])
        return bool(REGISTRY_5XX.search(errors))

    def run_all(self) -> list[int]:
        """All runs, with a registry 500 during a push retried (everything is cached then)."""
        which = list(range(len(self.streams)))
        seen = [0] * len(self.streams)
        codes = self.run(which)
        for _ in range(PUSH_RETRIES):
            failed = [i for i, code in zip(which, codes, strict=True) if code != 0]
            hiccup = any(self._registry_hiccup(i, seen[i]) for i in failed)
            if not failed or not hiccup or self.lease.renew(force=True):
                break
            # Registries answer 5xx now and then (a filesystem registry rewrites a tag's
            # link in place, so a HEAD racing a PUT to that tag gets 500).
            self.log.say("the registry answered 500 during the push; pushing again")
            which = failed
            seen = [len(s.tracker.errors) for s in self.streams]
            codes = self.run(which)
        result = [0] * len(self.streams)
        for index, code in zip(which, codes, strict=True):
            result[index] = code
        return result

    # verdicts -------------------------------------------------------------------------
    def first_failure(self, codes: list[int]) -> str:
        """The first run that failed on its own (the others were stopped because of it): the
        headline of its failed step, else its last error."""
        failed = [i for i, code in enumerate(codes) if code != 0]
        for index in failed:
            for lifted in self.headlines(index):
                self._point_at(lifted)
                return lifted.text
        for index in failed:
            stream = self.streams[index]
            errors = [e for e in stream.tracker.errors if "context canceled" not in e]
            if errors or len(failed) == 1:
                platforms = ", ".join(s.platform for s in stream.steps)
                what = errors[-1] if errors else f"buildx exited with status {codes[index]}"
                if len(self.streams) == 1:
                    return what
                return f"{platforms} on node {stream.steps[0].node}: {what}"
        return f"buildx exited with status {codes[failed[0]]}"

    def _point_at(self, lifted: headline.Headline) -> None:
        """Remember which log line the headline came from, for the page to open the log at."""
        if lifted.line is None:
            return
        seq = (
            self.build.log_lines.filter(
                text__startswith=f"#{lifted.number} ",
                text__contains=self.log.redact(lifted.line)[:120],
            )
            .order_by("seq")
            .values_list("seq", flat=True)
            .first()
        )
        if seq is not None:
            Build.objects.filter(pk=self.build.pk).update(reason_line=seq)
            self.build.reason_line = seq

    def failure_reason(self, codes: list[int], *, logged_in: bool) -> str:
        """Why the build failed: the first failing run's error, with who pushed when the
        registry refused the push."""
        reason = self.first_failure(codes)
        if credentials.UNAUTHORIZED.search(reason):
            registry_host = credentials.registry_of(self.build.project.image)
            who = "the team's login" if logged_in else "no login (none saved)"
            return f"the registry {registry_host} refused the push with {who}: {reason}"
        return reason

    def lost_nodes(self, codes: list[int]) -> list[str]:
        """A run that failed may mean its node is gone: check it now, not in a minute, so the
        next plan avoids it. Returns the nodes that are unreachable."""
        lost = []
        for pk in {self.streams[i].steps[0].node_id for i, code in enumerate(codes) if code}:
            node = self.backend.check(self.nodes[pk])
            if not node.reachable:
                self.log.say(f"node {node.name} is unreachable now: {node.last_error}")
                lost.append(node.name)
        return lost
