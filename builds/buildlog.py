"""A build's log: numbered lines stored as rows and published to the build's watchers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Max, Sum
from django.db.models.functions import Length
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from builds import events
from builds.models import Build, LogLine
from builds.redact import Redactor
from portal.grammar import InvalidValue

Line = tuple[str | None, int, str]  # platform (None: the build's own), stream, text
TRUNCATED = (
    "Crossport: log truncated after {mb} MB (PORTAL_BUILD_LOG_MAX_BYTES); the build goes on, "
    "and Crossport's own lines are still kept"
)


class BuildLog:
    """Assigns gapless sequence numbers to a build's lines, hides the values of the secrets the
    build uses (`redact`), stores and publishes them. Build output past
    PORTAL_BUILD_LOG_MAX_BYTES is dropped after one line saying so; Crossport's own lines
    (`say`) are always kept."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.seq = build.log_lines.aggregate(m=Max("seq"))["m"] or 0
        self.redact = Redactor()
        self.limit = settings.PORTAL_BUILD_LOG_MAX_BYTES
        self.stored = 0
        if self.limit and self.seq:  # a build taken over by another worker
            self.stored = build.log_lines.aggregate(n=Sum(Length("text")))["n"] or 0
        self.truncated = False

    def write(self, lines: list[Line], own: bool = False) -> None:
        rows = []
        for platform, stream, text in lines:
            text = self.redact(text)
            if not own and self.limit:
                self.stored += len(text.encode()) + 1
                if self.stored > self.limit:
                    if not self.truncated:
                        self.truncated = True
                        mb = self.limit / 1024 / 1024
                        text = TRUNCATED.format(mb=f"{mb:g}")
                        platform, stream = None, 0
                    else:
                        continue
            self.seq += 1
            rows.append(
                LogLine(
                    build=self.build,
                    seq=self.seq,
                    platform=platform or "",
                    stream=stream,
                    text=text,
                )
            )
        if rows:
            LogLine.objects.bulk_create(rows)
            events.publish_lines(self.build.pk, rows)

    def say(self, text: str) -> None:
        self.write([(None, 0, f"Crossport: {text}")], own=True)


# Reading: the build page shows a window of the log, more on request, all of it as text -------

WINDOW = 2000  # lines on the page at first, and per "earlier"/"later" request
TEXT_BATCH = 5000  # rows per query while streaming the whole log


@dataclass
class Window:
    lines: list[LogLine]
    first: int  # seq of the first line shown
    last: int  # seq of the last line shown
    total: int  # the build's last seq (seqs are gapless from 1)
    direction: str = ""  # "before" or "after" for a request for more

    @property
    def html(self) -> SafeString:
        return lines_html(self.lines)

    @property
    def earlier(self) -> bool:
        return self.first > 1

    @property
    def later(self) -> bool:
        return self.last < self.total


def lines_html(lines: Iterable[LogLine | dict[str, Any]]) -> SafeString:
    """Log lines as the page shows them, one `<span>` each: written here in one pass, escaped
    with Django's escape, because a template loop over thousands of lines was the build page's
    largest cost. The live page's websocket fragments use it too."""
    parts = []
    for line in lines:
        if isinstance(line, dict):
            seq, platform, stream, text = (
                line["seq"],
                line["platform"],
                line["stream"],
                line["text"],
            )
        else:
            seq, platform, stream, text = line.seq, line.platform, line.stream, line.text
        head = tag = ""
        if platform:
            shown = escape(platform)
            head, tag = f' data-log-platform="{shown}"', f'<span class="plat">[{shown}]</span> '
        parts.append(
            f'<span class="line s{int(stream)}" data-seq="{int(seq)}"{head}>{tag}{escape(text)}'
            "</span>"
        )
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped or an int


def _window(build: Build, start: int, end: int, total: int, direction: str = "") -> Window:
    lines = list(build.log_lines.filter(seq__gte=start, seq__lte=end).order_by("seq"))
    return Window(lines, start, min(end, total), total, direction)


def page_window(build: Build) -> Window:
    """The last WINDOW lines; for a failed build, the lines around the one its headline came
    from (which the page scrolls to)."""
    total = build.log_lines.aggregate(m=Max("seq"))["m"] or 0
    end = total
    if build.state == Build.State.FAILED and build.reason_line and build.reason_line <= total:
        end = min(total, build.reason_line + WINDOW // 2)
    return _window(build, max(1, end - WINDOW + 1), end, total)


def more_lines(build: Build, before: int | None, after: int | None) -> Window:
    """The window just before seq `before`, or just after seq `after` (one of them)."""
    if (before is None) == (after is None):
        raise InvalidValue("before", before, "give either before or after")
    total = build.log_lines.aggregate(m=Max("seq"))["m"] or 0
    if before is not None:
        return _window(build, max(1, before - WINDOW), before - 1, total, "before")
    assert after is not None
    return _window(build, after + 1, after + WINDOW, total, "after")


def _text_rows(build_pk: int, after: int) -> list[tuple[int, str, str]]:
    rows = LogLine.objects.filter(build_id=build_pk, seq__gt=after).order_by("seq")
    return list(rows.values_list("seq", "platform", "text")[:TEXT_BATCH])


async def as_text(build: Build) -> AsyncIterator[str]:
    """The whole log as `[platform] text` lines, a batch of rows at a time (an async iterator:
    under ASGI, Django would read a synchronous one into memory before sending)."""
    if build.log_pruned_at:
        yield f"Crossport: this log was removed on {build.log_pruned_at:%Y-%m-%d} (retention)\n"
        return
    after = 0
    while rows := await sync_to_async(_text_rows)(build.pk, after):
        yield "".join(f"[{p}] {t}\n" if p else f"{t}\n" for _, p, t in rows)
        after = rows[-1][0]
