"""Debian's chromium driven by playwright for the userstudy browser tests, and the served study.

Chromium is started with ``executable_path`` (``playwright install`` is never needed) in a fresh
profile folder, which is removed afterwards.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from userstudy.serve import make_server, serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def skip_unless_chromium():
    """Called at a test module's import: skips the module when playwright or chromium is missing;
    returns ``playwright.sync_api``."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
    return sync_api


@contextmanager
def chromium_page(profile: Path, *, extra_flags=(), default_timeout_ms: int = 10_000, **context_options):
    """Yields ``(page, errors)``: the first page of a headless Chromium with ``profile`` as its user data
    folder, and the page errors it raises. ``context_options`` (viewport, has_touch, ...) go to
    ``launch_persistent_context``. The browser is closed and ``profile`` removed afterwards."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS + list(extra_flags),
                timeout=30_000, **context_options)
            try:
                context.set_default_timeout(default_timeout_ms)
                page = context.pages[0] if context.pages else context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                yield page, errors
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def served(study_dir: Path):
    """Yields the study server, on 127.0.0.1 at an OS-chosen port, serving in a thread; shut down afterwards."""
    server = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
