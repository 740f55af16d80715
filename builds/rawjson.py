"""Decode the `docker buildx build --progress=rawjson` stream (hand-written: small and central).

buildx writes one indented JSON object per BuildKit status update (the JSON form of
`client.SolveStatus`: optional `vertexes`, `statuses`, `logs` and `warnings` arrays),
concatenated with only whitespace between them. Plain text lines can appear too: a failed
build ends with a plain `ERROR: ...` block. Two layers:

- `StreamDecoder` splits raw text into decoded objects (dicts) and plain text lines (str),
  incrementally: chunks may split anywhere.
- `builds.progress.ProgressTracker` turns those items into ordered events for the log and
  the per-platform progress bars.

No Django here: the runner feeds this and publishes the events.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

__all__ = ["Item", "StreamDecoder"]

Item = dict[str, Any] | str

MAX_PENDING_CHARS = 8 * 1024 * 1024

# Outside a JSON string we only care about braces and quotes; any character that cannot
# appear in JSON outside a string proves that a "{" line is plain text, not a truncated object.
_OUTSIDE_STRING = re.compile(r'[{}"]|[^ \t\r\n\[\]:,0-9.eE+\-truefalsn]')
_INSIDE_STRING = re.compile(r'["\\\x00-\x1f]')


class _BraceScanner:
    """Finds where a possibly incomplete JSON object ends, one chunk at a time.

    Only used while an object is split across feeds, so that waiting for the rest costs
    time proportional to the new data instead of re-running the JSON parser on the whole
    buffer every feed.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escape = False

    def scan(self, text: str, start: int = 0) -> tuple[str, int]:
        """Return ("open", -1), ("closed", index after the final "}") or ("invalid", index)."""
        pos = start
        end = len(text)
        while pos < end:
            if self.escape:
                self.escape = False
                pos += 1
                continue
            if self.in_string:
                match = _INSIDE_STRING.search(text, pos)
                if match is None:
                    return "open", -1
                char = match.group()
                pos = match.end()
                if char == '"':
                    self.in_string = False
                elif char == "\\":
                    self.escape = True
                else:  # a raw control character (newline...) cannot be inside a JSON string
                    return "invalid", match.start()
                continue
            match = _OUTSIDE_STRING.search(text, pos)
            if match is None:
                return "open", -1
            char = match.group()
            pos = match.end()
            if char == "{":
                self.depth += 1
            elif char == "}":
                self.depth -= 1
                if self.depth == 0:
                    return "closed", pos
            elif char == '"':
                self.in_string = True
            else:
                return "invalid", match.start()
        return "open", -1


class StreamDecoder:
    """Incremental splitter of the rawjson stream into dicts and plain text lines.

    `feed()` returns every item completed by the new text, in stream order, and keeps the
    rest buffered. A "{" at the start of a line (after optional blanks) or right after a
    previous object starts a JSON object; anything else is a text line. Blank lines are
    dropped; text lines are returned without their line ending.

    The cost is linear in the input: a complete object is parsed once; an object split across
    feeds is parsed at most once more, when a brace scanner run over the new chunks only
    says it is complete (`raw_decode_calls` counts parser calls, for tests). An object that
    is still unfinished after `max_pending` characters is given up on and becomes text.
    """

    def __init__(self, max_pending: int = MAX_PENDING_CHARS) -> None:
        self.max_pending = max_pending
        self.raw_decode_calls = 0
        self._decoder = json.JSONDecoder()
        self._bytes_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # What the buffered text is waiting for: None (nothing buffered), "blank" (the blanks
        # that start a line), "object" (the end of a "{") or "line" (the end of a text line).
        self._waiting: str | None = None
        self._pending: list[str] = []
        self._pending_len = 0
        self._scanner = _BraceScanner()

    def feed_bytes(self, data: bytes) -> list[Item]:
        return self.feed(self._bytes_decoder.decode(data))

    def feed(self, text: str) -> list[Item]:
        if not text:
            return []
        if self._waiting is None:
            return self._process(text, final=False)
        self._pending.append(text)
        self._pending_len += len(text)
        too_long = self._pending_len > self.max_pending
        if self._waiting == "blank":
            # Only blanks so far: the line may still turn out to be "  {...}" or text.
            if not text.strip(" \t\r") and not too_long:
                return []
            return self._resume(first_line_text=False)
        if self._waiting == "line":
            if "\n" not in text and not too_long:
                return []
            return self._resume(first_line_text=True)
        status, _ = self._scanner.scan(text)
        if status == "closed":
            return self._resume(first_line_text=False)
        if status == "invalid":
            return self._resume(first_line_text=True)
        if too_long:
            return self._give_up(final=False)
        return []

    def close(self) -> list[Item]:
        """Flush everything: an unfinished trailing object or line becomes text lines."""
        tail = self._bytes_decoder.decode(b"", final=True)
        if self._waiting is None:
            return self._process(tail, final=True)
        self._pending.append(tail)
        return self._give_up(final=True)

    def _take_pending(self) -> str:
        buf = "".join(self._pending)
        self._waiting = None
        self._pending = []
        self._pending_len = 0
        return buf

    def _give_up(self, *, final: bool) -> list[Item]:
        """The pending object will not complete: its lines are text."""
        buf = self._take_pending()
        items: list[Item] = []
        newline = buf.rfind("\n")
        if final or newline < 0:
            _append_text(items, buf)
        else:
            _append_text(items, buf[:newline])
            self._wait("line", buf[newline + 1 :])
        return items

    def _resume(self, *, first_line_text: bool) -> list[Item]:
        buf = self._take_pending()
        if not first_line_text:
            return self._process(buf, final=False)
        # The buffered line is text (or a "{" line that is not valid JSON): emit it, then
        # parse whatever follows afresh.
        items: list[Item] = []
        newline = buf.find("\n")
        if newline < 0:
            if len(buf) > self.max_pending:
                _append_text(items, buf)
            else:
                self._wait("line", buf)
            return items
        _append_text(items, buf[:newline])
        items.extend(self._process(buf[newline + 1 :], final=False))
        return items

    def _wait(self, what: str, rest: str) -> None:
        self._waiting = what
        self._pending = [rest]
        self._pending_len = len(rest)

    def _process(self, buf: str, *, final: bool) -> list[Item]:
        items: list[Item] = []
        pos = 0
        end = len(buf)
        while pos < end:
            start = pos
            while pos < end and buf[pos] in " \t\r":
                pos += 1
            if pos == end:
                if not final:
                    self._wait("blank", buf[start:])
                break
            char = buf[pos]
            if char == "\n":
                pos += 1
                continue
            if char == "{":
                outcome = self._try_object(buf, pos, final=final, items=items)
                if outcome >= 0:
                    pos = outcome
                    continue
                if outcome == _WAIT:
                    return items
                # _INVALID: fall through, the line is text.
            newline = buf.find("\n", pos)
            if newline < 0:
                if final or end - start > self.max_pending:
                    _append_text(items, buf[start:])
                else:
                    self._wait("line", buf[start:])
                return items
            _append_text(items, buf[start:newline])
            pos = newline + 1
        return items

    def _try_object(self, buf: str, pos: int, *, final: bool, items: list[Item]) -> int:
        """Decode the object at `pos`: its end, or _WAIT (buffered) or _INVALID (text)."""
        self.raw_decode_calls += 1
        try:
            obj, obj_end = self._decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            # A truncated object fails on its last token, which runs to the end of the
            # buffer and holds no newline; a failure with a newline after it is a real error.
            if final or buf.find("\n", exc.pos) >= 0:
                return _INVALID
            scanner = _BraceScanner()
            status, _ = scanner.scan(buf, pos)
            if status != "open" or len(buf) - pos > self.max_pending:
                return _INVALID
            self._scanner = scanner
            self._wait("object", buf[pos:])
            return _WAIT
        except RecursionError:
            return _INVALID
        items.append(obj)
        return obj_end


_WAIT = -1
_INVALID = -2


def _append_text(items: list[Item], text: str) -> None:
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.strip():
            items.append(line)
