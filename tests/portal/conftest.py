"""The portal's browser tests take the shared real-server and chromium fixtures (tests/browser.py)."""

from __future__ import annotations

from browser import chromium, portal_url

__all__ = ["chromium", "portal_url"]
