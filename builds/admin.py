from __future__ import annotations

from django.contrib import admin, messages

from builds.models import Build, BuilderNode, ManifestRecord
from builds.nodes import check_node


@admin.register(BuilderNode)
class BuilderNodeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "endpoint",
        "enabled",
        "reachable",
        "engine_version",
        "buildkit_version",
        "native_platforms",
        "emulated_platforms",
        "last_checked_at",
    ]
    readonly_fields = [
        "reachable",
        "engine_version",
        "buildkit_version",
        "native_platforms",
        "emulated_platforms",
        "last_checked_at",
        "last_error",
    ]
    actions = ["check_health"]

    @admin.action(description="Check health now")
    def check_health(self, request, queryset):  # type: ignore[no-untyped-def]
        for node in queryset:
            check_node(node)
            level = messages.SUCCESS if node.reachable else messages.ERROR
            self.message_user(
                request, f"{node.name}: {'reachable' if node.reachable else node.last_error}", level
            )


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "state", "fault", "ref", "node", "created_at", "finished_at"]
    list_filter = ["state", "fault"]
    readonly_fields = [f.name for f in Build._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(ManifestRecord)
class ManifestRecordAdmin(admin.ModelAdmin):
    """Read-only: the ledger is append-only."""

    list_display = ["reference", "digest", "project", "pushed_by", "pushed_at", "source_commit"]
    list_filter = ["project"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f.name for f in ManifestRecord._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
