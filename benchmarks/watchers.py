"""A crowd watching one build (run by hand; PostgreSQL and Redis, no Docker): N websocket
clients (`/ws/builds/<id>/?format=json`, bearer token, as API clients and CI dashboards
connect) follow one running build while the worker writes its log, in the scale-out
configuration: the portal as `manage.py serve --no-worker`, channels-redis between it and the
worker, a fresh PostgreSQL database.

This script plays the worker through the worker's own path (builds.buildlog.BuildLog.write:
store the rows, publish them on the channel layer), writing the lines of a recorded buildx
rawjson stream (tests/builds/data/go-hello-3platforms.rawjson, through the worker's decoder and
tracker) a few at a time, `--every` seconds apart. Every client drops its connection once, at
a random moment, and reconnects with `?after=<the last seq it has>`, as a browser on a flaky
network would.

Measured: latency from the worker writing a line to each client receiving it (lines that came
from the backlog after a reconnect are not counted: they were written while the client was
away); gaps (a seq a client never received) and duplicates (a seq it received twice) over all
clients. The clients run in one asyncio loop in this process, beside the writer: their own
time is in the numbers.

Target (issue 16): 200 watchers, p95 < 1 s, 0 gaps, 0 duplicates.

    .venv/bin/python benchmarks/watchers.py [--watchers 200] [--every 0.05]
      [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/5]

Ends with one JSON line: {"watchers": 200, "p95_ms": x, "gaps": 0, "dups": 0, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from first_line import recorded_lines, running_build, setup_database
from pages import serve

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Watcher:
    received: list[tuple[int, float]] = field(default_factory=list)  # (seq, when)
    ready_at: float = 0.0  # first connection done (its status message received)
    away: tuple[float, float] = (0.0, 0.0)  # disconnected at, reconnected at
    reconnects: int = 0


async def watch(
    url: str,
    token: str,
    watcher: Watcher,
    total: int,
    drop_after: float,
    writing: dict[str, float],
    stop: threading.Event,
) -> None:
    """Follow the build; drop the connection `drop_after` seconds into the writing, reconnect
    with ?after=<last seq>, and return once every line is in."""
    import websockets

    headers = {"Authorization": f"Bearer {token}"}
    last = 0
    dropped = False
    while not stop.is_set():
        async with websockets.connect(
            f"{url}?format=json&after={last}", additional_headers=headers, max_size=None
        ) as ws:
            while not stop.is_set():
                if dropped and last >= total:
                    return
                begun = writing.get("at")
                if not dropped and begun and time.monotonic() >= begun + drop_after:
                    dropped = True
                    watcher.reconnects += 1
                    watcher.away = (time.time() * 1000, 0.0)
                    break  # leaves the `async with`: the connection closes, then reconnects
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if message["type"] == "status":  # sent once the backlog is through
                    if not watcher.ready_at:
                        watcher.ready_at = time.time() * 1000
                    elif dropped and not watcher.away[1]:
                        watcher.away = (watcher.away[0], time.time() * 1000)
                if message["type"] != "lines":
                    continue
                now = time.time() * 1000
                for line in message["lines"]:
                    watcher.received.append((line["seq"], now))
                    last = max(last, line["seq"])


async def crowd(
    url: str,
    token: str,
    watchers: list[Watcher],
    total: int,
    window: float,
    writing: dict[str, float],
    ready: Any,
) -> None:
    stop = threading.Event()
    tasks = [
        asyncio.create_task(watch(url, token, w, total, random.uniform(0, window), writing, stop))
        for w in watchers
    ]
    ready.set()
    done, pending = await asyncio.wait(tasks, timeout=window + 360)
    stop.set()
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception():
            raise task.exception()  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()

    import psycopg

    name = f"bench_watchers_{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    database = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    watchers = [Watcher() for _ in range(args.watchers)]
    written: dict[int, float] = {}
    connect_s = 0.0
    try:
        setup_database(database, args.redis_url)
        from builds.buildlog import BuildLog
        from portal.models import ApiToken

        lines = recorded_lines()
        build = running_build()
        token = ApiToken.issue(build.requested_by, "watchers")[1]
        batch = 3  # what one read of buildx's output decodes to: a few lines
        writing_s = len(range(0, len(lines), batch)) * args.every
        writing: dict[str, float] = {}  # "at": when the worker began writing (monotonic)
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PORTAL_DEBUG": "false", "PORTAL_DATA_DIR": tmp}
            server, url = serve(env, Path(tmp) / "server.log")
            ws_url = url.replace("http://", "ws://") + f"/ws/builds/{build.pk}/"
            try:
                ready = threading.Event()
                clients = threading.Thread(
                    target=lambda: asyncio.run(
                        crowd(ws_url, token, watchers, len(lines), writing_s, writing, ready)
                    )
                )
                clients.start()
                ready.wait()
                connecting = time.monotonic()
                while sum(bool(w.ready_at) for w in watchers) < len(watchers):
                    if time.monotonic() - connecting > 300:
                        sys.exit("not every watcher connected within 300 s")
                    time.sleep(0.1)
                connect_s = time.monotonic() - connecting
                writing["at"] = time.monotonic()
                log = BuildLog(build)
                for start in range(0, len(lines), batch):
                    chunk = lines[start : start + batch]
                    at = time.time() * 1000
                    for offset in range(len(chunk)):
                        written[log.seq + 1 + offset] = at
                    log.write(chunk)
                    time.sleep(args.every)
                clients.join()
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    expected = set(written)
    latencies: list[float] = []
    gaps = dups = 0
    for w in watchers:
        seqs = [seq for seq, _ in w.received]
        gaps += len(expected - set(seqs))
        dups += len(seqs) - len(set(seqs))
        gone, back = w.away
        for seq, when in w.received:
            # A live delivery: written while this client was connected.
            if written[seq] >= w.ready_at and not gone <= written[seq] <= back:
                latencies.append(when - written[seq])
    latencies.sort()
    result = {
        "watchers": len(watchers),
        "lines": len(expected),
        "deliveries": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "max_ms": round(latencies[-1], 1),
        "gaps": gaps,
        "dups": dups,
        "reconnects": sum(w.reconnects for w in watchers),
        "all_connected_s": round(connect_s, 1),
        "config": "scale-out (PostgreSQL, channels-redis, separate processes)",
    }
    if not args.json:
        print(
            f"{len(watchers)} watchers, {len(expected)} lines written in batches of 3 every "
            f"{args.every} s; each client reconnected once"
        )
    print(json.dumps(result))
    sys.exit(0 if gaps == dups == 0 else 1)


if __name__ == "__main__":
    main()
