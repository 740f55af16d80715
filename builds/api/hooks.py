"""Git webhooks over HTTP: the API that makes or rotates a project's webhook (team admins), and
the receiving URL git hosts post to (no session, no CSRF token, no bearer token: the signature
is the credential). The project page's button is builds.views.projects.project_webhook."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from builds import webhooks
from builds.models import Webhook
from portal import throttle
from portal.access import get_project_for_user, is_team_admin
from portal.apiview import Op, Schema, api_view, array_of, error, shape
from portal.models import Project
from portal.sealing import SealError

log = logging.getLogger("crossport.security")

KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
REFUSAL = "too many bad webhook signatures from this address; retry in {wait} seconds"

WEBHOOK = Schema(
    "Webhook",
    shape(
        url="string",
        secret={"type": "string", "description": "only in the answer that made it"},
        deliveries=array_of(
            shape(
                received_at="string",
                host="string",
                event="string",
                ref="string",
                commit="string",
                outcome={"enum": ["built", "skipped", "refused"]},
                detail="string",
                build="integer?",
            )
        ),
    ),
)


def admin_project(user: Any, pk: int) -> Project:
    project = get_project_for_user(user, pk)
    if not is_team_admin(user, project.team):
        raise PermissionDenied("webhooks are managed by team admins")
    return project


@api_view(
    GET=Op("The project's webhook URL and its last deliveries (team admins)", answers=WEBHOOK),
    POST=Op(
        "Make the project's webhook, or give it a new secret (team admins); the secret is "
        "answered this once",
        answers=WEBHOOK,
    ),
)
def project_webhook(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    try:
        project = admin_project(request.user, pk)
    except PermissionDenied as exc:
        return error(403, str(exc))
    if request.method == "POST":
        made, secret = webhooks.rotate(project, request.user)
        url = request.build_absolute_uri(webhooks.path(made))
        return JsonResponse({"url": url, "secret": secret})
    hook = Webhook.objects.filter(project=project).first()
    if hook is None:
        return error(404, "the project has no webhook yet: POST here to make one")
    return JsonResponse(
        {
            "url": request.build_absolute_uri(webhooks.path(hook)),
            "deliveries": [d.to_api() for d in webhooks.deliveries(hook)],
        }
    )


def _read(request: HttpRequest) -> tuple[bytes, HttpResponse | None]:
    """The raw body (the signature covers its exact bytes), at most MAX_BODY of it read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b"", error(400, "bad Content-Length")
    if declared > webhooks.MAX_BODY:
        return b"", error(413, f"the body is over {webhooks.MAX_BODY} bytes")
    raw = request.read(webhooks.MAX_BODY + 1)
    if len(raw) > webhooks.MAX_BODY:
        return b"", error(413, f"the body is over {webhooks.MAX_BODY} bytes")
    return raw, None


def _count(address: str, why: str) -> None:
    count = throttle.TOKEN_ADDRESS.take(address).count
    log.warning("webhook refused from %s: %s (%d in this window)", address, why, count)


@csrf_exempt
def receive(request: HttpRequest, key: str) -> HttpResponse:
    """A git host's delivery: 202 and the build, 200 and why nothing was built, 401/403 for a
    missing/bad signature (counted against the address like bad API tokens), 413 past the size
    limit, 429 while the address is locked out."""
    if request.method != "POST":
        return error(405, f"method {request.method} not allowed", allowed=["POST"])
    address = throttle.client_address(request.META.get("REMOTE_ADDR"))
    if wait := throttle.TOKEN_ADDRESS.wait(address):
        response = error(429, REFUSAL.format(wait=wait))
        response["Retry-After"] = str(wait)
        return response
    body, problem = _read(request)
    if problem is not None:
        return problem
    hook = (
        Webhook.objects.select_related("project__team").filter(key=key).first()
        if KEY.fullmatch(key)
        else None
    )
    if hook is None:
        _count(address, "no such webhook")
        return error(404, "no such webhook")
    try:
        answer = webhooks.receive(hook, request.headers, body)
    except SealError as exc:  # the key changed since the secret was sealed
        return error(409, str(exc))
    if answer.refused:
        _count(address, f"{answer.body['error']} for project {hook.project_id}")
    return JsonResponse(answer.body, status=answer.status)
