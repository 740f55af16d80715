"""Remove the log lines of builds that finished more than PORTAL_LOG_RETENTION_DAYS days ago
(or `--days`). The builds themselves, their reasons, digests and the ledger stay; the build page
says when the log was removed. Run it daily (cron, a systemd timer, a Kubernetes CronJob)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from builds.models import Build, LogLine

BATCH = 200  # builds per transaction: a long backlog is pruned without one huge delete


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="default: PORTAL_LOG_RETENTION_DAYS")
        parser.add_argument("--dry-run", action="store_true", help="only count")

    def handle(self, *args: Any, **options: Any) -> None:
        days = (
            options["days"] if options["days"] is not None else settings.PORTAL_LOG_RETENTION_DAYS
        )
        if days <= 0:
            if options["days"] is not None:
                raise CommandError("--days must be 1 or more")
            self.stdout.write("PORTAL_LOG_RETENTION_DAYS is 0: logs are kept; nothing to do")
            return
        cutoff = timezone.now() - timedelta(days=days)
        due = Build.objects.filter(
            state__in=Build.FINISHED, finished_at__lt=cutoff, log_pruned_at__isnull=True
        ).order_by("pk")
        if options["dry_run"]:
            lines = LogLine.objects.filter(build__in=due).count()
            self.stdout.write(f"would remove {lines} lines of {due.count()} builds")
            return
        builds = lines = 0
        while pks := list(due.values_list("pk", flat=True)[:BATCH]):
            lines += LogLine.objects.filter(build_id__in=pks).delete()[0]
            builds += Build.objects.filter(pk__in=pks).update(log_pruned_at=timezone.now())
        self.stdout.write(
            f"removed {lines} lines of {builds} builds finished before {cutoff:%Y-%m-%d}"
        )
