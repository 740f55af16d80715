"""A build's log: numbered lines stored as rows and published to the build's watchers."""

from __future__ import annotations

from django.db.models import Max

from builds import events
from builds.models import Build, LogLine
from builds.redact import Redactor

Line = tuple[str | None, int, str]  # platform (None: the build's own), stream, text


class BuildLog:
    """Assigns gapless sequence numbers to a build's lines, hides the values of the secrets the
    build uses (`redact`), stores and publishes them."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.seq = build.log_lines.aggregate(m=Max("seq"))["m"] or 0
        self.redact = Redactor()

    def write(self, lines: list[Line]) -> None:
        if not lines:
            return
        rows = []
        for platform, stream, text in lines:
            self.seq += 1
            rows.append(
                LogLine(
                    build=self.build,
                    seq=self.seq,
                    platform=platform or "",
                    stream=stream,
                    text=self.redact(text),
                )
            )
        LogLine.objects.bulk_create(rows)
        events.publish_lines(self.build.pk, rows)

    def say(self, text: str) -> None:
        self.write([(None, 0, f"Crossport: {text}")])
