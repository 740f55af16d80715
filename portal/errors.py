"""What the portal answers when Django itself refuses a request (handler400/403/404/500):
JSON `{"error": ...}` under /api/, as every API answer is, Django's plain pages elsewhere.

A body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 wherever it was read first: Django raises
RequestDataTooBig and would answer 400, and the CSRF middleware reads a posted form before
any view does.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

TOO_LARGE = "request body too large"


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def too_large(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return error(413, TOO_LARGE)
    return HttpResponse(f"{TOO_LARGE}\n", status=413, content_type="text/plain; charset=utf-8")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return too_large(request)
    if is_api(request):
        return error(400, "bad request")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return error(403, "forbidden")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return error(404, "not found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return error(500, "internal error; it has been logged")
    return defaults.server_error(request)
