"""The ledger's hash chain: each team's records link, oldest first, by a SHA-256 over the row's
content and the previous row's hash, so a changed, removed or reordered row shows, even when
the change was made in the database by its superuser.

- One chain per team, appended under a lock (a PostgreSQL advisory lock per team, held to the
  end of the insert's transaction; a process lock on SQLite, whose embedded configuration is
  one process), so two workers never fork it. Per team, so a team's own export verifies offline
  without anyone else's rows.
- What is hashed is :func:`content`: the row's own values, with ids rather than names that may
  be renamed later (a team's slug, a user's name). The export (JSON lines) holds exactly those
  values plus the two hashes, so ``manage.py ledger verify --file`` needs nothing else.
- Rows written before the chain existed carry no hash; verification counts them and says they
  are outside the chain.
- The last row's hash (the head) is shown on the ledger page and in the API: an auditor who
  notes it can later prove that nothing up to it changed, and that rows were not removed
  from the end (the head would be gone).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import connection

from builds.models import ManifestRecord

LOCK_CLASS = 0x4C44  # the advisory lock's first key: "LD", ledger; the second is the team id
_sqlite_lock = threading.Lock()
FIELDS = (
    "kind",
    "team",
    "project",
    "build",
    "sources",
    "reference",
    "digest",
    "media_type",
    "platforms",
    "attestations",
    "pushed_by",
    "pushed_at",
    "source_url",
    "source_ref",
    "source_commit",
    "builder_node",
    "previous_digest",
)


def content(record: ManifestRecord) -> dict[str, Any]:
    """What the hash covers, as JSON values."""
    pushed_at = record.pushed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return {
        "kind": record.kind,
        "team": record.team_id,
        "project": record.project_id,
        "build": record.build_id,
        "sources": record.sources,
        "reference": record.reference,
        "digest": record.digest,
        "media_type": record.media_type,
        "platforms": record.platforms,
        "attestations": record.attestations,
        "pushed_by": record.pushed_by_id,
        "pushed_at": pushed_at,
        "source_url": record.source_url,
        "source_ref": record.source_ref,
        "source_commit": record.source_commit,
        "builder_node": record.builder_node,
        "previous_digest": record.previous_digest,
    }


def digest(values: dict[str, Any], previous: str) -> str:
    body = {key: values[key] for key in FIELDS} | {"chain_previous": previous}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def appending(team_id: int) -> Iterator[str]:
    """Inside the caller's transaction: hold the team's chain and yield its head hash."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, team_id])
        yield head(team_id)
    else:
        with _sqlite_lock:
            yield head(team_id)


def head(team_id: int) -> str:
    last = (
        ManifestRecord.objects.filter(team_id=team_id)
        .exclude(chain_hash="")
        .order_by("-pk")
        .values_list("chain_hash", flat=True)
        .first()
    )
    return last or ""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    head: str
    unchained: int = 0
    row: int | None = None  # the first row that does not hold
    problem: str = ""

    def sentence(self) -> str:
        if not self.ok:
            return f"row {self.row}: {self.problem}"
        text = f"{self.checked} rows verified, head {self.head or '(empty)'}"
        if self.unchained:
            text += f"; {self.unchained} older rows predate the chain and are not covered"
        return text


def verify(rows: Iterable[dict[str, Any]]) -> Verdict:
    """Check rows of one team's chain, oldest first: each a dict of :data:`FIELDS` plus `id`,
    `chain_hash` and `chain_previous` (from the database or an export)."""
    previous, checked, unchained = "", 0, 0
    for row in rows:
        if not row.get("chain_hash"):
            if checked:  # after the chain began: its hash was wiped, or it was written past it
                problem = "it has no hash: changed, or written past the ledger's code"
                return Verdict(False, checked, previous, unchained, row["id"], problem)
            unchained += 1
            continue
        if row.get("chain_previous") != previous:
            problem = "does not follow the row before it: a row was removed, added or reordered"
            return Verdict(False, checked, previous, unchained, row["id"], problem)
        if digest(row, previous) != row["chain_hash"]:
            problem = "its content changed since it was recorded"
            return Verdict(False, checked, previous, unchained, row["id"], problem)
        previous = row["chain_hash"]
        checked += 1
    return Verdict(True, checked, previous, unchained)


def rows(team_id: int) -> Iterator[dict[str, Any]]:
    """The team's records as verify() and the export read them, oldest first."""
    records = ManifestRecord.objects.filter(team_id=team_id).order_by("pk")
    for record in records.iterator(chunk_size=2000):
        yield export_row(record)


def export_row(record: ManifestRecord) -> dict[str, Any]:
    return {
        "id": record.pk,
        **content(record),
        "chain_previous": record.chain_previous,
        "chain_hash": record.chain_hash,
    }


def verify_team(team_id: int) -> Verdict:
    return verify(rows(team_id))


def read_export(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"line {number} is not JSON: {exc}") from None
            if not isinstance(row, dict) or any(key not in row for key in ("id", *FIELDS)):
                raise ValueError(f"line {number} is not a ledger row of this version")
            yield row
