"""manage.py ledger verify|export: check the ledger's hash chains (builds/chain.py).

    manage.py ledger verify                      every team's chain, from the database
    manage.py ledger verify --team acme          one team's
    manage.py ledger verify --file export.jsonl  an export, offline (no database rows read)
    manage.py ledger export --team acme > export.jsonl

Exit status 0 when every chain holds, 1 naming the first row that does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from builds import chain
from portal.models import Team


class Command(BaseCommand):
    help = "Verify or export the manifest ledger's hash chains."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["verify", "export"])
        parser.add_argument("--team", help="a team's slug (default: every team)")
        parser.add_argument("--file", type=Path, help="verify this export instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            team = self._team(options["team"])
            for row in chain.rows(team.pk):
                self.stdout.write(json.dumps(row, sort_keys=True, ensure_ascii=False))
            return
        if options["file"]:
            try:
                with options["file"].open(encoding="utf-8") as lines:
                    verdict = chain.verify(chain.read_export(lines))
            except (OSError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
            self._report(str(options["file"]), verdict)
            return
        teams = [self._team(options["team"])] if options["team"] else Team.objects.order_by("slug")
        for team in teams:
            self._report(f"team {team.slug}", chain.verify_team(team.pk))

    def _team(self, slug: str | None) -> Team:
        if not slug:
            raise CommandError("name the team: --team SLUG")
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise CommandError(f"no team {slug!r}")
        return team

    def _report(self, what: str, verdict: chain.Verdict) -> None:
        if verdict.ok:
            self.stdout.write(f"{what}: ok, {verdict.sentence()}")
        else:
            self.stderr.write(f"{what}: BROKEN at {verdict.sentence()}")
            sys.exit(1)
