from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from portal import api, views

api_urls = [
    path("api/v1/", api.index, name="api-index"),
    path("api/v1/projects", api.projects, name="api-projects"),
    path("api/v1/detect", api.detect, name="api-detect"),
    path("api/v1/projects/<int:pk>", api.project_detail, name="api-project"),
    path(
        "api/v1/projects/<int:pk>/dockerfile", api.project_dockerfile, name="api-project-dockerfile"
    ),
    path("api/v1/projects/<int:pk>/builds", api.project_builds, name="api-project-builds"),
    path("api/v1/builds/<int:pk>", api.build_detail, name="api-build"),
    path("api/v1/builds/<int:pk>/log", api.build_log, name="api-build-log"),
    path("api/v1/builds/<int:pk>/cancel", api.build_cancel, name="api-build-cancel"),
    path("api/v1/manifests", api.manifests, name="api-manifests"),
    path("api/v1/merges", api.merges, name="api-merges"),
    path("api/v1/credentials", api.credentials_list, name="api-credentials"),
    path("api/v1/credentials/<int:pk>/test", api.credential_test, name="api-credential-test"),
    path("api/v1/credentials/<int:pk>/delete", api.credential_delete, name="api-credential-delete"),
    path("api/v1/nodes", api.nodes, name="api-nodes"),
    path("api/v1/nodes/<int:pk>", api.node_detail, name="api-node"),
    path("api/v1/nodes/<int:pk>/check", api.node_check, name="api-node-check"),
    path("api/v1/nodes/<int:pk>/emulators", api.node_emulators, name="api-node-emulators"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("teams/<slug:slug>/", views.team_detail, name="team"),
    path("teams/<slug:slug>/manifests/", views.team_history, name="team-manifests"),
    path("teams/<slug:slug>/merge/", views.team_merge, name="team-merge"),
    path("teams/<slug:slug>/credentials", views.team_credentials, name="team-credentials"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("projects/new/", views.project_new, name="project-new"),
    path("projects/new/options", views.project_options, name="project-options"),
    path("projects/new/detect", views.project_detect, name="project-detect"),
    path("projects/<int:pk>/", views.project_detail, name="project"),
    path("projects/<int:pk>/Dockerfile", views.project_dockerfile, name="project-dockerfile"),
    path(
        "projects/<int:pk>/Dockerfile/edit",
        views.project_dockerfile_edit,
        name="project-dockerfile-edit",
    ),
    path("projects/<int:pk>/builds", views.project_build, name="project-build"),
    path("projects/<int:pk>/history", views.project_history, name="project-history"),
    path("builds/<int:pk>/", views.build_detail, name="build"),
    path("manifests/<int:pk>/", views.manifest_detail, name="manifest"),
    path("builds/<int:pk>/cancel", views.build_cancel, name="build-cancel"),
    path("admin/", admin.site.urls),
    *api_urls,
]
