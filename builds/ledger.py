"""The pushed-manifest ledger: the one place that writes it, the immutable-version rule it
backs, and the filters and exports that read it (pages and API).

Rows are append-only (the model, the admin and database triggers refuse changes); builds and
manual merges both append through :func:`record`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from builds import chain
from builds.models import Build, ManifestRecord
from builds.registry import IndexSummary
from portal import tagging
from portal.grammar import InvalidValue, check_text
from portal.ids import parse_id
from portal.models import Project, Team


def record(
    *,
    reference: str,
    summary: IndexSummary,
    team: Team,
    pushed_by: Any,
    kind: str = ManifestRecord.Kind.BUILD,
    project: Project | None = None,
    build: Build | None = None,
    source: tuple[str, str, str] = ("", "", ""),
    builder_node: str = "",
    sources: list[dict[str, Any]] | None = None,
) -> ManifestRecord:
    """Append what ``reference`` (repository:tag) points to now. ``source`` is the git
    (url, ref, commit) it was built from; ``sources`` the images a merge joined. The previous
    digest is the tag's last recorded one when it differs (empty for a first or same push)."""
    with transaction.atomic(), chain.appending(team.pk) as chain_previous:
        before = (
            ManifestRecord.objects.filter(reference=reference)
            .order_by("-pushed_at", "-pk")
            .values_list("digest", flat=True)
            .first()
        )
        url, ref, commit = source
        entry = ManifestRecord(
            kind=kind,
            team=team,
            project=project,
            build=build,
            reference=reference,
            digest=summary.digest,
            media_type=summary.media_type,
            platforms=summary.platforms,
            attestations=summary.attestations,
            sources=sources or [],
            pushed_by=pushed_by if getattr(pushed_by, "is_authenticated", False) else None,
            source_url=url,
            source_ref=ref,
            source_commit=commit,
            builder_node=builder_node,
            previous_digest=before if before and before != summary.digest else "",
            chain_previous=chain_previous,
        )
        entry.chain_hash = chain.digest(chain.content(entry), chain_previous)
        entry.save()
        return entry


def version_taken(repository: str, tag: str, in_registry: Callable[[], bool]) -> bool:
    """The immutable-version rule: a project that keeps versions immutable never pushes an
    x.y.z tag twice, whoever pushes (build or merge). Taken means recorded here, or found in
    the registry (pushed before the portal, or by hand); ``in_registry`` is asked only then."""
    if not tagging.FULL_SEMVER_TAG.fullmatch(tag):
        return False
    if not Project.objects.filter(image=repository, immutable_tags=True).exists():
        return False
    return ManifestRecord.objects.filter(reference=f"{repository}:{tag}").exists() or in_registry()


FILTERS = ("team", "project", "tag", "person", "since", "until")
CSV_FIELDS = [
    "pushed_at",
    "kind",
    "team",
    "tag",
    "digest",
    "media_type",
    "platforms",
    "attestations",
    "previous_digest",
    "pushed_by",
    "source_url",
    "source_ref",
    "source_commit",
    "builder_node",
    "project",
    "build",
    "sources",
]


@dataclass
class Push:
    """One push as people think of it: a build's index under all its tags (one ledger row
    per tag, each with its own previous digest), or one merge."""

    first: ManifestRecord
    records: list[ManifestRecord]


def pushes(records: Iterable[ManifestRecord]) -> list[Push]:
    """Consecutive rows of one build and digest, newest first as the records come."""
    grouped: list[Push] = []
    for record in records:
        last = grouped[-1].first if grouped else None
        if (
            last is not None
            and record.build_id is not None
            and (record.build_id, record.digest) == (last.build_id, last.digest)
        ):
            grouped[-1].records.append(record)
        else:
            grouped.append(Push(record, [record]))
    return grouped


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValue(name, value, "expected a date like 2026-11-27") from None


def filter_records(
    records: QuerySet[ManifestRecord], params: Mapping[str, str]
) -> QuerySet[ManifestRecord]:
    """Narrow an access-checked queryset by team slug, project id, tag, person, date range."""
    # Names are checked as text first: a NUL would reach PostgreSQL, which refuses it (a 500).
    if team := params.get("team"):
        team = check_text("team", team, 50)
        records = records.filter(Q(team__slug=team) | Q(project__team__slug=team))
    if project := params.get("project"):
        if (project_id := parse_id(project)) is None:
            raise InvalidValue("project", project, "expected a project id")
        records = records.filter(project_id=project_id)
    if tag := params.get("tag"):
        records = records.filter(reference__endswith=f":{check_text('tag', tag, 128)}")
    if person := params.get("person"):
        records = records.filter(pushed_by__username=check_text("person", person, 150))
    if since := params.get("since"):
        records = records.filter(pushed_at__date__gte=_date("since", since))
    if until := params.get("until"):
        records = records.filter(pushed_at__date__lte=_date("until", until))
    return records


def _cell(value: object) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote those."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(records: QuerySet[ManifestRecord]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for record in records:
        row = record.to_api()
        writer.writerow(
            {
                key: _cell(value)
                for key, value in {
                    "pushed_at": row["pushed_at"],
                    "kind": row["kind"],
                    "team": row["team"] or "",
                    "tag": row["tag"],
                    "digest": row["digest"],
                    "media_type": row["media_type"],
                    "platforms": json.dumps(row["platforms"], sort_keys=True),
                    "attestations": len(row["attestations"]),
                    "previous_digest": row["previous_digest"] or "",
                    "pushed_by": row["pushed_by"] or "",
                    "source_url": row["source"]["url"],
                    "source_ref": row["source"]["ref"],
                    "source_commit": row["source"]["commit"],
                    "builder_node": row["builder_node"],
                    "project": row["project"] or "",
                    "build": row["build"] or "",
                    "sources": " ".join(s["reference"] for s in row["sources"]),
                }.items()
            }
        )
    return out.getvalue()
