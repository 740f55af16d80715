from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from builds import builders
from builds.forms import NodeForm
from builds.models import (
    Build,
    BuilderNode,
    BuildxBuilder,
    ManifestRecord,
    RegistryCredential,
)
from builds.nodes import BINFMT_NAMES, HEALTH_FIELDS, binfmt_image, check_node, install_emulators
from portal.grammar import InvalidValue
from portal.http import posted_pk

# What a health check learns, as the admin shows it (free disk in human units).
HEALTH_SHOWN = [name.replace("free_disk_bytes", "free_disk") for name in HEALTH_FIELDS]


class ObjectPageAdmin(admin.ModelAdmin):
    """A model admin with one extra page per object: `object_page = (suffix, view method)`,
    served at `<pk>/<suffix>/` and named `<app>_<model>_<suffix>`."""

    object_page: tuple[str, str]

    def get_urls(self):  # type: ignore[no-untyped-def]
        suffix, view = self.object_page
        name = f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"
        page = path(
            f"<int:pk>/{suffix}/", self.admin_site.admin_view(getattr(self, view)), name=name
        )
        return [page, *super().get_urls()]


@admin.register(BuilderNode)
class BuilderNodeAdmin(ObjectPageAdmin):
    """Nodes: endpoint and TLS checked before anything connects (NodeForm), health at a glance,
    check now, drain, and install emulators (showing the exact command and its output)."""

    form = NodeForm
    list_display = [
        "name",
        "kind",
        "endpoint",
        "enabled",
        "max_builds",
        "pool",
        "running",
        *HEALTH_SHOWN,
    ]
    readonly_fields = ["tls_state", *HEALTH_SHOWN, "wanted_emulators", "emulator_link"]
    fieldsets = [
        (None, {"fields": ["name", "endpoint", "enabled", "max_builds"]}),
        ("Node pool", {"fields": ["reserved_for"]}),
        (
            "Mutual TLS (tcp:// off loopback)",
            {"fields": ["tls_state", "tls_ca", "tls_cert", "tls_key", "clear_tls"]},
        ),
        ("Emulators", {"fields": ["repair_emulators", "wanted_emulators", "emulator_link"]}),
        ("Health", {"fields": tuple(HEALTH_SHOWN)}),
    ]
    actions = ["check_health", "drain", "undrain"]

    @admin.display(description="TLS")
    def tls_state(self, node: BuilderNode) -> str:
        if not node.tls_sealed:
            return "none"
        return f"saved; client certificate valid until {node.tls_expires_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="reserved for")
    def pool(self, node: BuilderNode) -> str:
        return ", ".join(team.slug for team in node.reserved_for.all()) or "shared"

    @admin.display(description="running builds")
    def running(self, node: BuilderNode) -> int:
        return node.running_builds()

    @admin.display(description="free disk")
    def free_disk(self, node: BuilderNode) -> str:
        if node.free_disk_bytes is None:
            return "unknown"
        return f"{node.free_disk_bytes / 2**30:.1f} GiB"

    @admin.display(description="install")
    def emulator_link(self, node: BuilderNode) -> str:
        if node.pk is None:
            return ""
        url = reverse("admin:builds_buildernode_emulators", args=[node.pk])
        return format_html('<a href="{}">Install emulators…</a>', url)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        check_node(obj)  # the input was valid: now connect, and show what the node says
        if obj.reachable:
            self.message_user(request, f"{obj.name}: reachable, {obj.buildkit_label}")
        else:
            self.message_user(request, f"{obj.name}: {obj.last_error}", messages.WARNING)

    @admin.action(description="Check health now")
    def check_health(self, request, queryset):  # type: ignore[no-untyped-def]
        for node in queryset:
            check_node(node)
            level = messages.SUCCESS if node.reachable else messages.ERROR
            self.message_user(
                request, f"{node.name}: {'reachable' if node.reachable else node.last_error}", level
            )

    @admin.action(description="Drain (running builds finish, no new work)")
    def drain(self, request, queryset):  # type: ignore[no-untyped-def]
        self.message_user(request, f"drained {queryset.update(enabled=False)} node(s)")

    @admin.action(description="Take back into rotation")
    def undrain(self, request, queryset):  # type: ignore[no-untyped-def]
        self.message_user(request, f"enabled {queryset.update(enabled=True)} node(s)")

    object_page = ("emulators", "emulators_view")

    def emulators_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        node = get_object_or_404(BuilderNode, pk=pk)
        result, error = None, ""
        if request.method == "POST":
            try:
                result = install_emulators(node, request.POST.getlist("platforms"))
            except InvalidValue as exc:
                error = str(exc)
            node.refresh_from_db()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Install emulators on {node.name}",
            "node": node,
            "choices": [p for p in BINFMT_NAMES if p != "linux/arm/v5"],
            "result": result,
            "error": error,
            "image": binfmt_image(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/builds/buildernode/emulators.html", context)


class BuilderCreateForm(forms.ModelForm):
    # Declared: a many-to-many with its own through model (the platforms) is no form field.
    nodes = forms.ModelMultipleChoiceField(queryset=BuilderNode.objects.all())

    class Meta:
        model = BuildxBuilder
        fields = ["name"]

    def clean_name(self) -> str:
        try:
            return builders.validate_name(self.cleaned_data["name"])
        except InvalidValue as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(BuildxBuilder)
class BuildxBuilderAdmin(ObjectPageAdmin):
    """Named buildx builders: create from nodes, append or remove a node, bootstrap, inspect,
    remove, each showing the command it ran and its output (templates/admin/.../manage.html)."""

    form = BuilderCreateForm
    list_display = ["name", "node_names", "created_at", "manage_link"]

    @admin.display(description="nodes")
    def node_names(self, builder: BuildxBuilder) -> str:
        return ", ".join(n.name for n in builder.nodes.all())

    @admin.display(description="")
    def manage_link(self, builder: BuildxBuilder) -> str:
        url = reverse("admin:builds_buildxbuilder_manage", args=[builder.pk])
        return format_html('<a href="{}">Manage…</a>', url)

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # changes go through the manage page, which runs buildx

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        outcome = builders.create(obj.name, [(n, []) for n in form.cleaned_data["nodes"]])
        request.session["builder_results"] = [r.__dict__ for r in outcome.results]
        if not outcome.ok:
            self.message_user(request, f"{obj.name}: {outcome.error}", messages.ERROR)

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        pass  # builders.create set the nodes

    def response_add(self, request, obj, post_url_continue=None):  # type: ignore[no-untyped-def]
        builder = BuildxBuilder.objects.filter(name=obj.name).first()
        if builder is None:
            return TemplateResponse(
                request,
                "admin/builds/buildxbuilder/manage.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Creating {obj.name} failed",
                    "results": request.session.pop("builder_results", []),
                    "opts": self.model._meta,
                },
            )
        return redirect("admin:builds_buildxbuilder_manage", builder.pk)

    def delete_model(self, request, obj):  # type: ignore[no-untyped-def]
        builders.remove(obj)

    object_page = ("manage", "manage_view")

    def manage_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST" and not request.user.has_perm("builds.change_buildxbuilder"):
            raise PermissionDenied  # the actions run buildx
        builder = get_object_or_404(BuildxBuilder, pk=pk)
        results = request.session.pop("builder_results", [])
        if request.method == "POST":
            action = request.POST.get("action")
            node = BuilderNode.objects.filter(pk=posted_pk(request, "node")).first()
            if action == "bootstrap":
                done = builders.bootstrap(builder)
            elif action == "inspect":
                done = builders.inspect(builder)
            elif action == "append" and node is not None:
                try:
                    wanted = builders.validate_platforms(request.POST.get("platforms", ""))
                except InvalidValue as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                    return redirect("admin:builds_buildxbuilder_manage", builder.pk)
                done = builders.append(builder, node, wanted)
            elif action == "leave" and node is not None:
                done = builders.leave(builder, node)
            elif action == "remove":
                done = builders.remove(builder)
                if not BuildxBuilder.objects.filter(pk=pk).exists():
                    self.message_user(request, f"removed builder {builder.name}")
                    return redirect("admin:builds_buildxbuilder_changelist")
            else:
                raise PermissionDenied
            results = [r.__dict__ for r in done.results]
            if not done.ok:
                self.message_user(request, done.error, messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Builder {builder.name}",
            "builder": builder,
            "members": builder.nodes.all(),
            "memberships": builder.members(),
            "others": BuilderNode.objects.exclude(pk__in=builder.nodes.values("pk")),
            "results": results,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/builds/buildxbuilder/manage.html", context)


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

    list_display = [
        "reference",
        "kind",
        "digest",
        "team",
        "project",
        "pushed_by",
        "pushed_at",
        "source_commit",
    ]
    list_filter = ["kind", "team", "project"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f.name for f in ManifestRecord._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(RegistryCredential)
class RegistryCredentialAdmin(admin.ModelAdmin):
    """Read-only for staff: team admins save logins on their team page (the password is sealed
    there and never shown again); staff may delete one."""

    list_display = ["team", "registry", "username", "updated_at", "last_test_ok", "last_tested_at"]
    list_filter = ["team"]
    readonly_fields = [
        "team",
        "registry",
        "username",
        "created_by",
        "updated_at",
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
    ]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
