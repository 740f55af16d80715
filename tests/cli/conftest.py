"""The command line runs against a real portal process (tests/browser.py's server, no worker)."""

from __future__ import annotations

from browser import portal_url

__all__ = ["portal_url"]
