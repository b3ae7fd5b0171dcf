"""Debian's chromium driven by Playwright for Python, with every request off loopback refused."""

import contextlib
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def require_browser() -> None:
    """Skip, saying which, when chromium or Playwright's Python package is missing (.ci/run installs chromium)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@contextlib.contextmanager
def browser_page(viewport=(1280, 900), loopback: bool = True):
    """A page whose requests to anything but loopback (or file:) are aborted and recorded in `page.blocked`;
    with loopback=False, everything but file:, data: and blob: is."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            blocked: list[str] = []

            def route(r):
                url = urlparse(r.request.url)
                if url.scheme in ("file", "data", "blob") or loopback and url.hostname in LOOPBACK:
                    return r.continue_()
                blocked.append(r.request.url)
                return r.abort()

            context.route("**/*", route)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.blocked, page.errors = blocked, errors
            yield page
        finally:
            browser.close()
