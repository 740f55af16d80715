"""The one URL configuration: portal's pages and API, then the builds app's (builds/urls.py)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

import portal.ids  # noqa: F401 - registers the <id:...> converter
from portal import api, apidocs, logins, secrets_api, views

urlpatterns = [
    path("login/", logins.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<id:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("teams/<slug:slug>/", views.team_detail, name="team"),
    path("projects/<id:pk>/git-access", views.project_git_access, name="project-git-access"),
    path("teams/<slug:slug>/secrets", views.team_secret, name="team-secrets"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.index, name="api-index"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    path(apidocs.ROUTE, apidocs.docs, name="api-docs"),
    path("api/v1/projects", api.projects, name="api-projects"),
    path("api/v1/projects/<id:pk>", api.project_detail, name="api-project"),
    path("api/v1/projects/<id:pk>/deploy-key", api.deploy_key, name="api-project-deploy-key"),
    path("api/v1/projects/<id:pk>/git-token", api.git_token, name="api-project-git-token"),
    path("api/v1/teams/<slug:slug>/secrets", secrets_api.secrets, name="api-team-secrets"),
    path(
        "api/v1/teams/<slug:slug>/secrets/<str:name>",
        secrets_api.secret_detail,
        name="api-team-secret",
    ),
    path("", include("builds.urls")),
    re_path(r"^api/", api.not_found),  # last: an unknown API path is a JSON 404
]

# Django's own refusals: JSON under /api/, pages elsewhere (portal/errors.py).
handler400 = "portal.errors.bad_request"
handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"
