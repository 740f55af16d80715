"""`/metrics` in Prometheus's text format (prometheus-client), the same from every process.

Everything is read when Prometheus scrapes: builds, queue and nodes from the database, and the
counts of login and token failures and open websockets from the shared cache (portal/counters.py).
So any portal process answers for all of them, with no per-process files to merge or clean.
Histograms are counted in the database, over every finished build (so they only grow, as a
Prometheus histogram must).

Reachable from PORTAL_METRICS_ALLOW (addresses and networks; default loopback) or with
`Authorization: Bearer <PORTAL_METRICS_TOKEN>`; anyone else gets a 404, as for any unknown page.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from builds.models import Build, BuilderNode, BuildPlatform
from portal import counters

BUILD_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800)


def _seconds(value: timedelta | None) -> float:
    return value.total_seconds() if value else 0.0


def _histogram(
    rows: QuerySet[Any, Any], duration: str, buckets: tuple[int, ...], *group: str
) -> list[dict[str, Any]]:
    """Bucket counts, count and sum of `duration` over `rows`, per value of the `group` fields
    (over all of them when none is given)."""
    counts: dict[str, Any] = {
        f"le{b}": Count("pk", filter=Q(**{f"{duration}__lte": timedelta(seconds=b)}))
        for b in buckets
    }
    counts |= {"n": Count("pk"), "total": Sum(duration)}
    if not group:
        return [rows.aggregate(**counts)]
    return list(rows.values(*group).annotate(**counts))


def _buckets(row: dict[str, Any], buckets: tuple[int, ...]) -> list[tuple[str, float]]:
    return [(floatToGoString(b), row[f"le{b}"]) for b in buckets] + [("+Inf", row["n"])]


class Collector:
    def collect(self) -> Iterable[Metric]:
        yield from self.builds()
        yield from self.durations()
        yield from self.nodes()
        yield from self.counts()

    def builds(self) -> Iterator[Metric]:
        builds = GaugeMetricFamily(
            "crossport_builds", "Builds by state and team.", labels=["state", "team"]
        )
        by_team = Build.objects.values("state", "project__team__slug").annotate(n=Count("pk"))
        for count in by_team:
            builds.add_metric([count["state"], count["project__team__slug"]], count["n"])
        yield builds
        queued = Build.objects.filter(state=Build.State.QUEUED)
        yield GaugeMetricFamily(
            "crossport_queue_length", "Builds waiting for a worker.", value=queued.count()
        )
        oldest = queued.order_by("created_at").values_list("created_at", flat=True).first()
        yield GaugeMetricFamily(
            "crossport_queue_oldest_seconds",
            "How long the oldest queued build has waited (0: none waits).",
            value=_seconds(timezone.now() - oldest) if oldest else 0.0,
        )
        waited = Build.objects.filter(started_at__isnull=False).annotate(
            wait=ExpressionWrapper(F("started_at") - F("created_at"), DurationField())
        )
        wait = HistogramMetricFamily(
            "crossport_queue_wait_seconds", "Time from queued to started, per started build."
        )
        for row in _histogram(waited, "wait", WAIT_BUCKETS):
            wait.add_metric([], _buckets(row, WAIT_BUCKETS), _seconds(row["total"]))
        yield wait

    def durations(self) -> Iterator[Metric]:
        finished = BuildPlatform.objects.filter(
            started_at__isnull=False, finished_at__isnull=False
        ).annotate(took=ExpressionWrapper(F("finished_at") - F("started_at"), DurationField()))
        duration = HistogramMetricFamily(
            "crossport_build_platform_seconds",
            "Time each platform of a build took, by platform and strategy.",
            labels=["platform", "strategy"],
        )
        for row in _histogram(finished, "took", BUILD_BUCKETS, "platform", "build__strategy"):
            duration.add_metric(
                [row["platform"], row["build__strategy"]],
                _buckets(row, BUILD_BUCKETS),
                _seconds(row["total"]),
            )
        yield duration
        method = CounterMetricFamily(
            "crossport_platform_build_seconds",
            "Seconds spent building platforms, by how: native, cross or emulated.",
            labels=["method"],
        )
        for spent in finished.values("method").annotate(total=Sum("took")):
            method.add_metric([spent["method"] or "unknown"], _seconds(spent["total"]))
        yield method

    def nodes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "crossport_node_up",
            "1 if the node is enabled and passed its last check.",
            labels=["node"],
        )
        running = GaugeMetricFamily(
            "crossport_node_running_builds", "Builds running on the node.", labels=["node"]
        )
        busy = dict(
            BuildPlatform.objects.filter(state=BuildPlatform.State.RUNNING, node__isnull=False)
            .values("node__name")
            .annotate(n=Count("build", distinct=True))
            .values_list("node__name", "n")
        )
        for node in BuilderNode.objects.order_by("name"):
            up.add_metric([node.name], 1 if node.healthy else 0)
            running.add_metric([node.name], busy.get(node.name, 0))
        yield up
        yield running

    def counts(self) -> Iterator[Metric]:
        values = counters.read()
        yield GaugeMetricFamily(
            "crossport_websocket_watchers",
            "Open build websockets, all portal processes.",
            value=values[counters.WATCHERS],
        )
        yield CounterMetricFamily(
            "crossport_login_failures", "Wrong passwords.", value=values[counters.LOGIN_FAILURES]
        )
        yield CounterMetricFamily(
            "crossport_token_failures", "Bad API tokens.", value=values[counters.TOKEN_FAILURES]
        )


def allowed(request: HttpRequest) -> bool:
    token = settings.PORTAL_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in settings.PORTAL_METRICS_ALLOW)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        raise Http404("no such page")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
