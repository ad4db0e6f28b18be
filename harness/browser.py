"""A headless Chromium for the HTML reports: the system's own browser, driven through playwright.

Neither is a dependency of the package (the ``dev`` extra installs playwright; the browser comes from
the system's packages), so :func:`missing` says what is absent instead of an import failing.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
VIEWPORT = {"width": 1600, "height": 1000}


def chromium_path() -> str | None:
    """The first Chromium on PATH."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def missing() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return f"no Chromium on PATH (looked for {', '.join(BROWSERS)}; e.g. apt-get install chromium)"
    return None


@contextmanager
def browser_page(viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh page of a headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser.new_page(viewport=viewport or VIEWPORT)
        finally:
            browser.close()


def screenshot(html: Path, png: Path, anchor: str = "") -> Path:
    """The page ``html`` as it opens in the browser (at ``anchor`` when given), saved to ``png``."""
    with browser_page() as page:
        page.goto(html.resolve().as_uri() + (f"#{anchor}" if anchor else ""), wait_until="load")
        page.screenshot(path=str(png))
    return png
