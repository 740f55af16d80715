from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from builds.progress import (
    Event,
    LogLine,
    PlatformProgress,
    ProgressTracker,
    StepUpdate,
)
from builds.rawjson import StreamDecoder
from builds.vertexnames import vertex_platform

DATA = Path(__file__).parent / "data"
# A real stream recorded on the stack (3 platforms, cross-compiling Go, pushed), and a
# hand-written failing one in the same format (Go's encoder: 2-space indent, <>& escaped).
REAL = DATA / "go-hello-3platforms.rawjson"
FAILING = DATA / "rawjson_multiplatform_error.txt"
FIXTURES = [REAL, FAILING]


def decode_all(chunks: list[str], decoder: StreamDecoder | None = None) -> list[dict | str]:
    decoder = decoder or StreamDecoder()
    items: list[dict | str] = []
    for chunk in chunks:
        items += decoder.feed(chunk)
    return items + decoder.close()


def random_chunks(text: str, seed: int, largest: int = 200) -> list[str]:
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(text):
        size = rng.randint(1, largest)
        chunks.append(text[pos : pos + size])
        pos += size
    return chunks


def render(events: list[Event]) -> str:
    """One line per event, the format of the *.events golden files."""
    lines = []
    for event in events:
        if isinstance(event, LogLine):
            lines.append(f"log {event.platform or '-'} {event.stream} {event.text}")
        elif isinstance(event, StepUpdate):
            lines.append(f"step {event.platform} {event.state} {event.vertex[7:19]}")
        else:
            lines.append(f"progress {event.platform} {event.done}/{event.total}")
    return "\n".join(lines) + "\n"


def track(items: list[dict | str], tracker: ProgressTracker | None = None) -> list[Event]:
    tracker = tracker or ProgressTracker()
    events: list[Event] = []
    for item in items:
        events += tracker.consume(item)
    return events + tracker.flush()


# --- StreamDecoder ------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_decoder_reads_whole_fixture(path):
    text = path.read_text(encoding="utf-8")
    items = decode_all([text])
    objects = [item for item in items if isinstance(item, dict)]
    assert objects and all(
        set(obj) <= {"vertexes", "statuses", "logs", "warnings"} for obj in objects
    )
    # Every top-level object of the file, and nothing else, came out as a dict.
    assert len(objects) == text.count("\n}\n")
    texts = [item for item in items if isinstance(item, str)]
    if path == FAILING:
        assert texts[0] == '#0 building with "default" instance using docker driver'
        assert texts[-1].startswith("ERROR: failed to solve: process ")
        assert "   6 | >>> RUN go build -o /out/app ./... && echo ok > /out/log" in texts
    else:
        assert texts == []


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_decoder_same_items_for_any_chunking(path):
    text = path.read_text(encoding="utf-8")
    expected = decode_all([text])
    assert decode_all(list(text)) == expected  # one character at a time
    for seed in range(5):
        assert decode_all(random_chunks(text, seed)) == expected


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_decoder_bytes_split_inside_utf8_characters(path):
    data = path.read_bytes()
    expected = decode_all([data.decode("utf-8")])
    for size in (1, 2, 3, 7, 4096):
        decoder = StreamDecoder()
        items = []
        for pos in range(0, len(data), size):
            items += decoder.feed_bytes(data[pos : pos + size])
        assert items + decoder.close() == expected


def test_small_stream_split_at_every_position():
    text = (
        'plain text before\n{\n  "vertexes": [\n    {\n      "name": "a \\"q\\" \\\\ {x}",\n'
        '      "digest": "sha256:1"\n    }\n  ]\n}\n  indented text é\r\n\n'
        '{"logs": [{"data": "aGk="}]}{"statuses": []}\n{ not json\n'
        '{"x": "\\u00e9\\u003e"} trailing\n  \t{"i": 1}  \nlast line without newline'
    )
    expected = [
        "plain text before",
        {"vertexes": [{"name": 'a "q" \\ {x}', "digest": "sha256:1"}]},
        "  indented text é",
        {"logs": [{"data": "aGk="}]},
        {"statuses": []},
        "{ not json",
        {"x": "é>"},
        " trailing",
        {"i": 1},
        "last line without newline",
    ]
    assert decode_all([text]) == expected
    for cut in range(1, len(text)):
        assert decode_all([text[:cut], text[cut:]]) == expected, cut
    for cut in range(1, len(text), 7):
        for cut2 in range(cut + 1, len(text), 5):
            assert decode_all([text[:cut], text[cut:cut2], text[cut2:]]) == expected


def test_text_lines_keep_indentation_drop_line_endings_and_blank_lines():
    assert decode_all(["  a\r\n\n\t\n b  \n"]) == ["  a", " b  "]


def test_incomplete_trailing_object_becomes_text_lines_not_nested_objects():
    text = '{\n  "vertexes": [\n    {\n      "digest": "sha256:1"\n    }\n  ],\n  "logs": ['
    expected = ["{", '  "vertexes": [', "    {", '      "digest": "sha256:1"', "    }", "  ],"]
    expected.append('  "logs": [')
    assert decode_all([text]) == expected
    assert decode_all(list(text)) == expected


def test_invalid_object_with_balanced_braces_is_text_and_stream_continues():
    chunks = ['{"a": 1,}\n{"b"', ': 2}\n{"c": [1, }\n', '{"d": 4}\n']
    assert decode_all(chunks) == ['{"a": 1,}', {"b": 2}, '{"c": [1, }', {"d": 4}]


def test_raw_newline_inside_string_is_text():
    assert decode_all(['{"a": "x', '\ny"}\n', '{"b": 1}\n']) == ['{"a": "x', 'y"}', {"b": 1}]


def test_unfinished_object_over_the_cap_becomes_text():
    decoder = StreamDecoder(max_pending=100)
    assert decoder.feed('{\n  "logs": [\n    "' + "x" * 60) == []
    assert decoder.feed("x" * 60) == ["{", '  "logs": [']
    assert decoder.feed('x"\n  ]\n}\n') == ['    "' + "x" * 121 + '"', "  ]", "}"]
    assert decoder.feed('{"ok": true}\n') == [{"ok": True}]


def test_object_completed_in_the_feed_that_crosses_the_cap_is_kept():
    decoder = StreamDecoder(max_pending=100)
    assert decoder.feed('{"logs": ["' + "x" * 60) == []
    assert decoder.feed("x" * 60 + '"]}\n') == [{"logs": ["x" * 120]}]


def test_long_text_line_without_newline_over_the_cap_is_emitted():
    decoder = StreamDecoder(max_pending=50)
    assert decoder.feed("y" * 30) == []
    assert decoder.feed("y" * 30) == ["y" * 60]
    assert decoder.feed('{"ok": 1}\n') == [{"ok": 1}]


def make_object(index: int) -> str:
    obj = {
        "vertexes": [{"digest": f"sha256:{index:064x}", "name": f"[build {index}/9] RUN x"}],
        "logs": [{"vertex": f"sha256:{index:064x}", "stream": 1, "data": "aGVsbG8K"}],
    }
    return json.dumps(obj, indent=2) + "\n"


@pytest.mark.parametrize("chunk_size", [1, 3, 4096, None])
def test_decoder_parses_each_object_at_most_twice(chunk_size):
    count = 20_000 if chunk_size not in (1, 3) else 500
    text = "".join(make_object(i) for i in range(count))
    chunks = [text] if chunk_size is None else random_chunks(text, 1, chunk_size)
    decoder = StreamDecoder()
    items = decode_all(chunks, decoder)
    assert (
        len(items) == count and items[-1]["vertexes"][0]["name"] == f"[build {count - 1}/9] RUN x"
    )
    # Parsing is linear: one parser call per complete object, two for one split by a feed.
    assert decoder.raw_decode_calls <= 2 * count
    if chunk_size is None:
        assert decoder.raw_decode_calls == count


def test_big_object_fed_in_small_chunks_is_parsed_at_most_twice():
    big = json.dumps({"logs": [{"data": "QUJD" * 250_000}]}, indent=2) + "\n"
    decoder = StreamDecoder()
    items = decode_all(random_chunks(big, 2, 1024), decoder)
    assert len(items) == 1 and len(items[0]["logs"][0]["data"]) == 1_000_000
    assert decoder.raw_decode_calls <= 2


# --- vertex names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("[linux/amd64 build 4/6] RUN go build ./...", "linux/amd64"),
        ("[linux/arm64 build 4/6] RUN go build ./...", "linux/arm64"),
        ("[linux/arm/v7 internal] load metadata for docker.io/library/golang:1.22", "linux/arm/v7"),
        ("[linux/arm/v7 stage-1 2/2] COPY --from=build /out/app /app", "linux/arm/v7"),
        ("[linux/amd64  3/12] COPY . .", "linux/amd64"),
        ("[linux/amd64 build  4/12] RUN make", "linux/amd64"),
        ("[linux/amd64->arm64 build 6/6] RUN go build", "linux/arm64"),
        ("[linux/amd64->arm/v7 build 6/6] RUN go build", "linux/arm/v7"),
        ("[linux/amd64->windows/amd64 build 2/2] RUN x", "windows/amd64"),
        ("[linux/amd64/v2 2/3] RUN x", "linux/amd64/v2"),
        ("[build 2/5] WORKDIR /src", None),
        ("[ 2/12] WORKDIR /src", None),
        ("[internal] load build definition from Dockerfile", None),
        ("[auth] library/golang:pull token for registry-1.docker.io", None),
        ("exporting to image", None),
        ("pushing localhost:5000/test/hello:latest with docker", None),
        ("RUN echo [linux/amd64 x]", None),
        ("", None),
    ],
)
def test_vertex_platform(name, platform):
    assert vertex_platform(name) == platform


# --- ProgressTracker ----------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_tracker_golden(path):
    """The events of each fixture, reviewed by hand; regenerate with render() on change."""
    events = track(decode_all([path.read_text(encoding="utf-8")]))
    golden = path.with_suffix(".events").read_text(encoding="utf-8")
    assert render(events) == golden


def test_real_stream_progress_reaches_full_for_every_platform():
    tracker = ProgressTracker()
    events = track(decode_all([REAL.read_text(encoding="utf-8")]), tracker)
    final = {e.platform: (e.done, e.total) for e in events if isinstance(e, PlatformProgress)}
    # Steps 1-5 of the cross-compiling stage run once, named for linux/amd64: arm64 and
    # arm/v7 still count them once their own step 6/6 is done.
    assert final == {"linux/amd64": (8, 8), "linux/arm64": (8, 8), "linux/arm/v7": (8, 8)}
    for event in events:
        if isinstance(event, PlatformProgress):
            assert 0 <= event.done <= event.total
    assert tracker.errors == [] and tracker.failure_reason is None


def test_failing_stream_errors_and_reason():
    tracker = ProgressTracker()
    events = track(decode_all([FAILING.read_text(encoding="utf-8")]), tracker)
    vertex_error = (
        'process "/bin/sh -c go build -o /out/app ./... && echo ok > /out/log" did not '
        "complete successfully: exit code: 1"
    )
    assert tracker.errors == [vertex_error, f"failed to solve: {vertex_error}"]
    assert tracker.failure_reason == f"failed to solve: {vertex_error}"
    steps = [(e.platform, e.state) for e in events if isinstance(e, StepUpdate)]
    # The step that failed is an error; the other platform's, stopped because of it, is not.
    assert ("linux/arm64", "error") in steps and ("linux/amd64", "canceled") in steps
    texts = [e.text for e in events if isinstance(e, LogLine)]
    assert "#8 CANCELED" in texts
    assert texts.count(f"#9 ERROR: {vertex_error}") == 1
    # Plain text lines keep no platform and go to stderr.
    assert LogLine(None, "Dockerfile:6", 2) in events


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def vertex(n: int, name: str, **fields: object) -> dict:
    return {"digest": digest(n), "name": name, **fields}


def log(n: int, data: bytes | str, stream: int = 1) -> dict:
    raw = data.encode() if isinstance(data, str) else data
    return {
        "vertex": digest(n),
        "stream": stream,
        "data": base64.b64encode(raw).decode(),
        "timestamp": "2024-05-01T10:00:00Z",
    }


T0, T1 = "2024-05-01T10:00:00.000000001Z", "2024-05-01T10:00:01.250000001Z"
STEP = "[linux/arm64 build 2/3] RUN make"


def log_texts(events: list[Event]) -> list[str]:
    return [event.text for event in events if isinstance(event, LogLine)]


def test_logs_split_into_lines_with_partial_lines_buffered():
    tracker = ProgressTracker()
    events = tracker.consume({"vertexes": [vertex(1, STEP, started=T0)]})
    events += tracker.consume({"logs": [log(1, "one\ntw"), log(1, "err ", 2)]})
    assert log_texts(events) == [f"#1 {STEP}", "#1 one"]
    events = tracker.consume({"logs": [log(1, "o\nthree\n"), log(1, "line\n", 2)]})
    assert events == [
        LogLine("linux/arm64", "#1 two", 1),
        LogLine("linux/arm64", "#1 three", 1),
        LogLine("linux/arm64", "#1 err line", 2),
    ]
    events = tracker.consume({"logs": [log(1, "no newline")]})
    assert events == []
    assert tracker.flush() == [LogLine("linux/arm64", "#1 no newline", 1)]
    assert tracker.flush() == []


def test_partial_line_is_emitted_before_the_vertex_completes():
    tracker = ProgressTracker()
    tracker.consume({"vertexes": [vertex(1, STEP, started=T0)]})
    events = tracker.consume(
        {"vertexes": [vertex(1, STEP, started=T0, completed=T1)], "logs": [log(1, "tail")]}
    )
    assert log_texts(events) == ["#1 tail", "#1 DONE 1.2s"]


def test_utf8_character_split_across_log_chunks():
    data = "naïve ✓\n".encode()
    tracker = ProgressTracker()
    events = []
    for i in range(len(data)):
        events += tracker.consume({"logs": [log(1, data[i : i + 1])]})
    assert log_texts(events) == ["#1 naïve ✓"]


def test_carriage_return_progress_keeps_the_last_segment():
    tracker = ProgressTracker()
    events = tracker.consume({"logs": [log(1, "10%\r20%\r30%"), log(2, "a\rb\r\nc\r")]})
    events += tracker.consume({"logs": [log(1, "\r100%\r\n"), log(2, "\n")]})
    assert log_texts(events) == ["#1 b", "#2 100%", "#1 c"]  # numbered as first printed


def test_partial_progress_bar_does_not_grow_without_bound():
    tracker = ProgressTracker()
    for i in range(10_000):
        tracker.consume({"logs": [log(1, f"\r{i:>80}")]})
    assert log_texts(tracker.flush()) == [f"#1 {9999:>80}"]


def test_repeated_vertexes_emit_nothing_new():
    tracker = ProgressTracker()
    update = {"vertexes": [vertex(1, STEP, started=T0)]}
    assert len(tracker.consume(update)) == 3  # header, StepUpdate running, PlatformProgress
    assert tracker.consume(update) == []
    done = {"vertexes": [vertex(1, STEP, started=T0, completed=T1)] * 3}
    events = tracker.consume(done)
    assert log_texts(events) == ["#1 DONE 1.2s"]
    assert tracker.consume(done) == []
    assert tracker.consume(update) == []  # an old "started" again is not a new run


def test_vertex_run_again_is_printed_again_like_buildx():
    tracker = ProgressTracker()
    first = vertex(1, "[internal] load build context", started=T0, completed=T0)
    again = vertex(1, "[internal] load build context", started=T1)
    events = tracker.consume({"vertexes": [first, again]})  # same update: the last counts
    assert log_texts(events) == ["#1 [internal] load build context"]
    events = tracker.consume({"vertexes": [{**again, "completed": "2024-05-01T10:00:03Z"}]})
    assert log_texts(events) == ["#1 DONE 1.8s"]
    events = tracker.consume({"vertexes": [vertex(1, "x", started="2024-05-01T10:00:04Z")]})
    assert log_texts(events) == ["#1 [internal] load build context"]


def test_numbers_follow_first_print_and_statuses_print_when_done():
    tracker = ProgressTracker()
    events = tracker.consume(
        {"vertexes": [vertex(5, "pending step"), vertex(6, "exporting to image", started=T0)]}
    )
    events += tracker.consume(
        {
            "statuses": [
                {"id": "pushing layers", "vertex": digest(6), "current": 0, "started": T0},
                {
                    "id": "layer",
                    "vertex": digest(6),
                    "current": 1500,
                    "total": 3_000_000,
                    "started": T0,
                    "completed": T1,
                },
                {
                    "id": "transferring context:",
                    "vertex": digest(6),
                    "current": 693,
                    "started": T0,
                    "completed": T1,
                },
            ]
        }
    )
    events += tracker.consume(
        {
            "statuses": [
                {
                    "id": "pushing layers",
                    "vertex": digest(6),
                    "current": 0,
                    "started": T0,
                    "completed": T1,
                }
            ]
            * 2
        }
    )
    events += tracker.consume({"vertexes": [vertex(5, "pending step", started=T1)]})
    assert log_texts(events) == [
        "#1 exporting to image",
        "#1 layer 1.50kB / 3.00MB 1.2s done",
        "#1 transferring context: 693B 1.2s done",
        "#1 pushing layers 1.2s done",
        "#2 pending step",
    ]
    assert all(e.platform is None for e in events if isinstance(e, LogLine))
    assert not [e for e in events if isinstance(e, StepUpdate)]  # no platform, no step


def test_cached_and_error_states():
    tracker = ProgressTracker()
    events = tracker.consume(
        {
            "vertexes": [
                vertex(1, "[linux/amd64 build 1/2] FROM golang", cached=True),
                vertex(
                    2,
                    "[linux/amd64 build 2/2] RUN false",
                    started=T0,
                    completed=T1,
                    error="exit code: 1",
                ),
                vertex(
                    3,
                    "[linux/arm64 build 2/2] RUN false",
                    started=T0,
                    completed=T1,
                    error="rpc error: code = Canceled desc = context canceled",
                ),
            ]
        }
    )
    assert log_texts(events) == [
        "#1 [linux/amd64 build 1/2] FROM golang",
        "#2 [linux/amd64 build 2/2] RUN false",
        "#3 [linux/arm64 build 2/2] RUN false",
        "#1 CACHED",
        "#2 ERROR: exit code: 1",
        "#3 CANCELED",
    ]
    states = [(e.platform, e.vertex, e.state) for e in events if isinstance(e, StepUpdate)]
    assert states == [
        ("linux/amd64", digest(1), "cached"),
        ("linux/amd64", digest(2), "error"),
        ("linux/arm64", digest(3), "canceled"),
    ]
    assert tracker.errors == ["exit code: 1"]
    assert tracker.failure_reason == "exit code: 1"
    # An errored vertex stays errored.
    assert tracker.consume({"vertexes": [vertex(2, "x", started=T1)]}) == []


def test_platform_progress():
    tracker = ProgressTracker()
    names = [
        "[linux/arm64 build 1/3] FROM x",
        "[linux/arm64 build 2/3] COPY . .",
        "[linux/arm64 build 3/3] RUN make",
        "[linux/arm64 stage-1 1/2] FROM y",
        "[linux/arm64 stage-1 2/2] COPY --from=build / /",
    ]
    events = tracker.consume({"vertexes": [vertex(i, n) for i, n in enumerate(names)]})
    assert events == [PlatformProgress("linux/arm64", 0, 5)]
    events = tracker.consume({"vertexes": [vertex(0, names[0], cached=True)]})
    assert events[-1] == PlatformProgress("linux/arm64", 1, 5, cached=0, ran=0)  # FROM: pulled
    events = tracker.consume({"vertexes": [vertex(1, names[1], started=T0)]})
    assert not [e for e in events if isinstance(e, PlatformProgress)]  # running: no change
    events = tracker.consume({"vertexes": [vertex(2, names[2], started=T0, completed=T1)]})
    assert events[-1] == PlatformProgress("linux/arm64", 3, 5, cached=0, ran=1)  # 3/3: 2/3 too
    events = tracker.consume({"vertexes": [vertex(1, names[1], started=T0, completed=T1)]})
    assert events[-1] == PlatformProgress("linux/arm64", 3, 5, cached=0, ran=2)
    events = tracker.consume({"vertexes": [vertex(4, names[4], started=T0, completed=T1)]})
    assert events[-1] == PlatformProgress("linux/arm64", 5, 5, cached=0, ran=3)
    # BuildKit's own vertexes are no Dockerfile steps: not counted.
    events = tracker.consume({"vertexes": [vertex(9, "[internal] load metadata", cached=True)]})
    assert not [e for e in events if isinstance(e, PlatformProgress)]


def test_a_cached_step_run_again_counts_as_run():
    tracker = ProgressTracker()
    name = "[linux/arm64 build 1/1] RUN make"
    tracker.consume({"vertexes": [vertex(0, name, cached=True)]})
    tracker.consume({"vertexes": [vertex(0, name, started=T0)]})
    events = tracker.consume({"vertexes": [vertex(0, name, started=T0, completed=T1)]})
    assert events[-1] == PlatformProgress("linux/arm64", 1, 1, cached=0, ran=1)


def test_default_platform_for_single_platform_builds():
    tracker = ProgressTracker(default_platform="linux/arm64")
    events = tracker.consume(
        {"vertexes": [vertex(1, "[build 1/1] RUN x", started=T0)], "logs": [log(1, "hi\n")]}
    )
    assert events == [
        LogLine("linux/arm64", "#1 [build 1/1] RUN x", 0),
        StepUpdate("linux/arm64", digest(1), "[build 1/1] RUN x", "running"),
        LogLine("linux/arm64", "#1 hi", 1),
        PlatformProgress("linux/arm64", 0, 1),
    ]


def test_warnings_once_and_plain_text():
    tracker = ProgressTracker()
    warning = {"vertex": digest(1), "level": 1, "short": base64.b64encode(b"Casing\n").decode()}
    events = tracker.consume({"warnings": [warning, warning]})
    events += tracker.consume({"warnings": [warning]})
    assert log_texts(events) == ["#1 WARNING: Casing"]
    assert tracker.consume("ERROR: failed to solve: boom") == [
        LogLine(None, "ERROR: failed to solve: boom", 2)
    ]
    assert tracker.consume("  some text") == [LogLine(None, "  some text", 2)]
    assert tracker.errors == ["failed to solve: boom"]


def test_malformed_fields_are_ignored():
    tracker = ProgressTracker()
    events = tracker.consume(
        {
            "vertexes": [None, 3, {"digest": digest(1), "name": 5, "started": "not a time"}],
            "statuses": "x",
            "logs": [{"vertex": digest(1), "data": "!!not base64!!"}, {"data": None}],
            "warnings": [{"short": 12}],
        }
    )
    assert events == []
    events = tracker.consume(
        {"vertexes": [{"digest": digest(2), "name": "n", "started": T0, "completed": "garbage"}]}
    )
    assert log_texts(events) == ["#1 n", "#1 DONE"]


def test_a_missing_registry_cache_is_no_failure():
    # A project's first build: --cache-from names a cache that is not there yet; BuildKit
    # marks that vertex as errored and goes on. It must not become the build's headline.
    tracker = ProgressTracker()
    error = "failed to configure registry cache importer: localhost:5000/a/b:crossport-cache-x: not found"
    events = tracker.consume(
        {
            "vertexes": [
                vertex(
                    1,
                    "importing cache manifest from localhost:5000/a/b:crossport-cache-x",
                    started=T0,
                    completed=T1,
                    error=error,
                ),
                vertex(
                    2,
                    "[linux/amd64 build 2/2] RUN false",
                    started=T0,
                    completed=T1,
                    error="exit code: 1",
                ),
            ]
        }
    )
    assert f"#1 no cache to import: {error}" in log_texts(events)
    assert tracker.errors == ["exit code: 1"]
    assert tracker.failure_reason == "exit code: 1"
    assert [f.name for f in tracker.failures] == ["[linux/amd64 build 2/2] RUN false"]
