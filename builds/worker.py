"""The build worker's loop: claim queued builds, run each through the pipeline, reap lost ones.

Several workers (threads or processes) may run at once: a build is claimed with a conditional
UPDATE ... WHERE state='queued' and only the worker whose row count is 1 runs it; from then on
the worker holds a lease on it (``builds.lease``), and what one build does is
``builds.pipeline``. A build whose lease is not renewed in time is failed by any worker's reaper.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Max
from django.utils import timezone

from builds import events, services
from builds.backend import Backend
from builds.buildlog import BuildLog
from builds.models import Build, BuilderNode, BuildPlatform
from builds.nodes import check_due_nodes
from builds.pipeline import BuildRun
from builds.placement import plan_build
from builds.planner import PlanError
from portal import logcontext
from portal.models import Project, Team

log = logging.getLogger(__name__)

NODE_CHECK_POLL = 10.0  # how often the loop asks whether a node check is due


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- claiming and reaping ------------------------------------------------------------------


def planning_dockerfile(project: Project) -> str:
    """The Dockerfile as known before checkout: enough to see whether it cross-compiles."""
    try:
        return services.render_dockerfile(project).dockerfile
    except (KeyError, ValueError):
        return ""  # the build itself will report the broken settings


def claim_next(worker_id: str) -> Build | None:
    """Claim a queued build whose project has no build running, and plan it.

    One build per project at a time: builds of a project push the same tags, so running them
    in order keeps "latest" and the immutable-version check (done before the push) honest.
    Teams with fewer running builds go first, then the team that started a build least
    recently, then the oldest build, so one team's queue cannot starve another's; a team runs
    at most PORTAL_TEAM_MAX_BUILDS at once (0: no limit). The project row and the node rows
    are locked while claiming and planning, so two workers cannot both start one, nor overfill
    a node. A build that no node has room for stays queued; one that no healthy node can build
    at all fails, saying why.
    """
    now = timezone.now()
    queued = list(
        Build.objects.filter(state=Build.State.QUEUED)
        .exclude(project__builds__state=Build.State.RUNNING)
        .order_by("created_at", "pk")
        .values_list("pk", "project_id", "project__team_id")[:500]
    )
    running = Counter(
        Build.objects.filter(state=Build.State.RUNNING).values_list("project__team_id", flat=True)
    )
    # Among teams with as many builds running, the one that started a build least recently goes
    # first (never: first of all), so a team whose builds end quickly cannot keep the workers
    # from the teams queued behind it.
    started = dict(
        Build.objects.filter(project__team_id__in={row[2] for row in queued})
        .exclude(started_at=None)
        .values("project__team_id")
        .annotate(last=Max("started_at"))
        .values_list("project__team_id", "last")
    )
    never = datetime.min.replace(tzinfo=UTC)
    queued.sort(key=lambda row: (running[row[2]], started.get(row[2]) or never))  # stable
    limit = settings.PORTAL_TEAM_MAX_BUILDS
    waiting: set[int] = set()  # projects whose oldest build waits: their later ones wait too
    for pk, project_id, team_id in queued:
        if project_id in waiting or (limit and running[team_id] >= limit):
            continue
        unplannable = ""
        with transaction.atomic():
            # Evaluated as lists: .exists() and .count() would drop the FOR UPDATE.
            list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk"))
            busy = Build.objects.filter(project_id=project_id, state=Build.State.RUNNING)
            if busy.exists():
                continue
            if limit:  # the team's row is the lock: two workers cannot both take its last slot
                list(Team.objects.select_for_update().filter(pk=team_id).values_list("pk"))
                team_running = Build.objects.filter(
                    project__team_id=team_id, state=Build.State.RUNNING
                )
                if team_running.count() >= limit:
                    continue
            list(BuilderNode.objects.select_for_update().values_list("pk"))
            build = Build.objects.select_related("project__team", "requested_by").get(pk=pk)
            if build.state != Build.State.QUEUED:
                continue
            try:
                plan = plan_build(build, planning_dockerfile(build.project))
            except PlanError as exc:
                if exc.busy:
                    waiting.add(project_id)
                    continue  # stays queued until a node has room
                unplannable = str(exc)
            fields = {"state": Build.State.RUNNING, "worker": worker_id, "started_at": now}
            if unplannable:
                fields = {
                    "state": Build.State.FAILED,
                    "reason": f"no build plan: {unplannable}",
                    "fault": Build.Fault.SYSTEM,
                    "finished_at": now,
                }
            else:
                fields |= {"heartbeat_at": now, "plan": plan.to_json()}
            if not Build.objects.filter(pk=pk, state=Build.State.QUEUED).update(**fields):
                continue
            if not unplannable:
                first = plan.steps[0].node_id
                Build.objects.filter(pk=pk).update(node_id=first)
                for step in plan.steps:
                    BuildPlatform.objects.update_or_create(
                        build=build,
                        platform=step.platform,
                        defaults={"node_id": step.node_id, "method": step.method},
                    )
        build.refresh_from_db()
        if unplannable:
            BuildLog(build).write([(None, 2, f"Crossport: failed: {build.reason}")])
            events.publish_status(build)
            continue
        return build
    return None


def reap_stale(now: datetime | None = None) -> list[int]:
    """Fail running builds whose lease expired: their worker died or hung."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PORTAL_BUILD_LEASE_SECONDS)
    reaped = []
    stale = Build.objects.filter(state=Build.State.RUNNING, heartbeat_at__lt=cutoff)
    for build in stale:
        changed = Build.objects.filter(
            pk=build.pk, state=Build.State.RUNNING, heartbeat_at=build.heartbeat_at
        ).update(
            state=Build.State.FAILED,
            fault=Build.Fault.SYSTEM,
            reason=f"worker lost: no heartbeat from {build.worker or 'its worker'} since "
            f"{build.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC",
            finished_at=now,
        )
        if changed:
            build.platform_states.exclude(state=BuildPlatform.State.DONE).update(
                state=BuildPlatform.State.FAILED
            )
            build.refresh_from_db()
            # A dead worker on this machine left its workspace behind.
            for leftover in services.workspace_root().glob(f"build-{build.pk}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            BuildLog(build).write([(None, 2, f"Crossport: {build.reason}")])
            events.publish_status(build)
            reaped.append(build.pk)
    return reaped


# --- the loop --------------------------------------------------------------------------------


def work_once(
    worker_id: str, backend: Backend | None = None, handback: threading.Event | None = None
) -> Build | None:
    """Reap, then claim and run at most one build. Returns the build it ran. When `handback`
    is set meanwhile (the worker is stopping and its drain time is up), the build stops and
    goes back to the queue."""
    reap_stale()
    build = claim_next(worker_id)
    if build is not None:
        project = build.project
        with logcontext.about_build(build.pk, project.name, project.team.slug):
            log.info("build %s claimed by %s", build.pk, worker_id)
            BuildRun(build, backend or Backend(), worker_id, handback).execute()
            build.refresh_from_db(fields=["state"])
            log.info("build %s: %s", build.pk, build.state)
    return build


def run_forever(
    stop: threading.Event,
    worker_id: str | None = None,
    poll: float = 1.0,
    handback: threading.Event | None = None,
) -> None:
    """Until `stop`: claim and run builds. A build running when `stop` is set finishes, unless
    `handback` is set too (then it goes back to the queue)."""
    worker_id = worker_id or default_worker_id()
    log.info("build worker %s started", worker_id)
    backend = Backend()
    next_node_check = 0.0
    while not stop.is_set():
        close_old_connections()
        try:
            # Node health is due once a minute or so; asking every poll would only cost queries.
            if time.monotonic() >= next_node_check:
                check_due_nodes(settings.PORTAL_NODE_CHECK_SECONDS)
                next_node_check = time.monotonic() + NODE_CHECK_POLL
            ran = work_once(worker_id, backend, handback)
        except Exception:
            log.exception("worker loop error")
            ran = None
        # Idle: the next poll, or sooner when a build is queued in this process.
        if ran is None and events.QUEUED.wait(poll):
            events.QUEUED.clear()
    close_old_connections()
    log.info("build worker %s stopped", worker_id)
