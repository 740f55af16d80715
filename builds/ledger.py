"""Reading the pushed-manifest ledger: filters shared by the pages and the API, and exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import date

from django.db.models import Q, QuerySet

from builds.models import ManifestRecord
from builds.refs import InvalidValue

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


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValue(name, value, "expected a date like 2026-11-27") from None


def filter_records(
    records: QuerySet[ManifestRecord], params: Mapping[str, str]
) -> QuerySet[ManifestRecord]:
    """Narrow an access-checked queryset by team slug, project id, tag, person, date range."""
    if team := params.get("team"):
        records = records.filter(Q(team__slug=team) | Q(project__team__slug=team))
    if project := params.get("project"):
        if not (project.isascii() and project.isdecimal()):
            raise InvalidValue("project", project, "expected a project id")
        records = records.filter(project_id=int(project))
    if tag := params.get("tag"):
        records = records.filter(reference__endswith=f":{tag}")
    if person := params.get("person"):
        records = records.filter(pushed_by__username=person)
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
