"""Static files: hashed names in the pages, cached for a year, compressed when asked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_pages_name_hashed_files_served_compressed_and_cached_long(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    css = re.search(r'href="(/static/portal/app\.[0-9a-f]{12}\.css)"', page)
    assert css, "the stylesheet is not named by its hash"
    answer = client.get(css.group(1), headers={"Accept-Encoding": "gzip, br"})
    assert answer.status_code == 200
    assert "max-age=315360000" in answer["Cache-Control"] and "immutable" in answer["Cache-Control"]
    assert answer["Content-Encoding"] in ("gzip", "br")
    assert re.search(r'src="/static/portal/live\.[0-9a-f]{12}\.js"', page)
