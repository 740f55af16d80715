"""Build pages and build API routes; `portal/urls.py` includes them."""

from __future__ import annotations

from django.urls import path

import portal.ids  # noqa: F401 - registers the <id:...> converter
from builds import health, metrics
from builds.api import builders, hooks, nodes, registry, runs
from builds.views import ledger, projects, settings, team
from builds.views import nodes as node_pages
from builds.views import runs as run_pages

api_urls = [
    path("api/v1/detect", runs.detect, name="api-detect"),
    path(
        "api/v1/projects/<id:pk>/dockerfile", runs.project_dockerfile, name="api-project-dockerfile"
    ),
    path("api/v1/projects/<id:pk>/builds", runs.project_builds, name="api-project-builds"),
    path("api/v1/projects/<id:pk>/webhook", hooks.project_webhook, name="api-project-webhook"),
    path("api/v1/builds/<id:pk>", runs.build_detail, name="api-build"),
    path("api/v1/builds/<id:pk>/log", runs.build_log, name="api-build-log"),
    path("api/v1/builds/<id:pk>/cancel", runs.build_cancel, name="api-build-cancel"),
    path("api/v1/builds/<id:pk>/rebuild", runs.build_rebuild, name="api-build-rebuild"),
    path("api/v1/manifests", registry.manifests, name="api-manifests"),
    path("api/v1/merges", registry.merges, name="api-merges"),
    path("api/v1/credentials", registry.credentials_list, name="api-credentials"),
    path("api/v1/credentials/<id:pk>/test", registry.credential_test, name="api-credential-test"),
    path(
        "api/v1/credentials/<id:pk>/delete",
        registry.credential_delete,
        name="api-credential-delete",
    ),
    path("api/v1/nodes", nodes.nodes, name="api-nodes"),
    path("api/v1/nodes/<id:pk>", nodes.node_detail, name="api-node"),
    path("api/v1/nodes/<id:pk>/check", nodes.node_check, name="api-node-check"),
    path("api/v1/nodes/<id:pk>/emulators", nodes.node_emulators, name="api-node-emulators"),
    path("api/v1/builders", builders.builders_list, name="api-builders"),
    path("api/v1/builders/<slug:name>", builders.builder_detail, name="api-builder"),
    path("api/v1/builders/<slug:name>/append", builders.builder_append, name="api-builder-append"),
    path("api/v1/builders/<slug:name>/leave", builders.builder_leave, name="api-builder-leave"),
    path(
        "api/v1/builders/<slug:name>/bootstrap",
        builders.builder_bootstrap,
        name="api-builder-bootstrap",
    ),
]

urlpatterns = [
    path("", projects.project_list, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("teams/<slug:slug>/manifests/", ledger.team_history, name="team-manifests"),
    path(
        "teams/<slug:slug>/manifests/verify", ledger.team_ledger_verify, name="team-ledger-verify"
    ),
    path("teams/<slug:slug>/merge/", team.team_merge, name="team-merge"),
    path("teams/<slug:slug>/credentials", team.team_credentials, name="team-credentials"),
    path("projects/new/", projects.project_new, name="project-new"),
    path("projects/new/options", projects.project_options, name="project-options"),
    path("projects/new/detect", projects.project_detect, name="project-detect"),
    path("projects/<id:pk>/", projects.project_detail, name="project"),
    path("projects/<id:pk>/settings/", settings.project_settings, name="project-settings"),
    path("projects/<id:pk>/Dockerfile", projects.project_dockerfile, name="project-dockerfile"),
    path(
        "projects/<id:pk>/Dockerfile/edit",
        projects.project_dockerfile_edit,
        name="project-dockerfile-edit",
    ),
    path("projects/<id:pk>/builds", projects.project_build, name="project-build"),
    path("projects/<id:pk>/history", ledger.project_history, name="project-history"),
    path("projects/<id:pk>/webhook", projects.project_webhook, name="project-webhook"),
    # Git hosts post here: no session, no CSRF token; the signature is checked (builds.webhooks).
    path("hooks/<str:key>/", hooks.receive, name="webhook"),
    path("builds/<id:pk>/", run_pages.build_detail, name="build"),
    path("builds/<id:pk>/log/lines", run_pages.build_log_lines, name="build-log-lines"),
    path("builds/<id:pk>/log.txt", run_pages.build_log_text, name="build-log-text"),
    path("builds/<id:pk>/cancel", run_pages.build_cancel, name="build-cancel"),
    path("builds/<id:pk>/rebuild", run_pages.build_rebuild, name="build-rebuild"),
    path("manifests/<id:pk>/", ledger.manifest_detail, name="manifest"),
    path("manifests/<id:pk>/drift", ledger.manifest_drift, name="manifest-drift"),
    path("nodes/", node_pages.node_list, name="nodes"),
    path("nodes/<id:pk>/", node_pages.node_action, name="node-action"),
    *api_urls,
]
