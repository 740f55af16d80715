from __future__ import annotations

from django.contrib import admin

from portal.models import ApiToken, Membership, PinnedHostKey, Project, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "language", "image", "builder_node"]
    list_filter = ["team", "language"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # tokens are issued on the tokens page, where the raw value is shown once


@admin.register(PinnedHostKey)
class PinnedHostKeyAdmin(admin.ModelAdmin):
    """Delete a pin when a git server's host key really changed; the next fetch pins anew."""

    list_display = ["host", "port", "team", "key_type", "pinned_at"]
    list_filter = ["team"]
    readonly_fields = ["team", "host", "port", "key_type", "key", "pinned_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # pinned by the first fetch, or listed in PORTAL_GIT_KNOWN_HOSTS
