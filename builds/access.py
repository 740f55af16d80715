"""Access to builds and ledger records: through the teams a user belongs to (else a 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from builds.models import Build, ManifestRecord
from portal.access import teams_for


def get_build_for_user(user: Any, pk: int) -> Build:
    build = (
        Build.objects.filter(pk=pk, project__team__in=teams_for(user))
        .select_related("project__team", "node", "requested_by")
        .first()
    )
    if build is None:
        raise Http404("no such build")
    return build


def manifests_for(user: Any) -> QuerySet[ManifestRecord]:
    teams = teams_for(user)
    return ManifestRecord.objects.filter(
        Q(team__in=teams) | Q(project__team__in=teams)
    ).select_related("project__team", "team", "pushed_by")
