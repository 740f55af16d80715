"""Team membership changes, kept consistent: a team always keeps at least one admin."""

from __future__ import annotations

from django.db import transaction

from portal.models import Membership, Team


@transaction.atomic
def change_membership(
    team: Team, membership: Membership, *, remove: bool = False, role: str | None = None
) -> None:
    # Lock the admin rows (evaluated: .count() would drop FOR UPDATE) and re-read the row, so
    # two admins demoting each other at once cannot leave the team without one.
    admins = list(
        team.memberships.select_for_update()
        .filter(role=Membership.Role.ADMIN)
        .values_list("pk", flat=True)
    )
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    last_admin = membership.role == Membership.Role.ADMIN and len(admins) == 1
    if remove:
        if last_admin:
            raise ValueError("a team keeps at least one admin: make someone else admin first")
        membership.delete()
        return
    if role not in Membership.Role.values:
        raise ValueError(f"unknown role {role!r}")
    if last_admin and role != Membership.Role.ADMIN:
        raise ValueError("a team keeps at least one admin: make someone else admin first")
    membership.role = role
    membership.save(update_fields=["role"])
