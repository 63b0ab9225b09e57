"""The digest as a phone shows it: a real headless Chromium at 375 px and at desktop width."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from digest.config import Settings
from digest.demo import run as run_demo
from tests.browser import browser, screenshot_path  # noqa: F401


@pytest.fixture(scope="module")
def digests(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("demo")
    run_demo(Settings(_env_file=None, outbox_dir=folder / "outbox", secret_key="layout"), folder / "demo.sqlite3")
    pages = sorted((folder / "outbox").glob("*.html"))
    assert len(pages) == 4
    return pages


@pytest.mark.parametrize("width", [375, 1024])
def test_digest_fits_the_screen_and_stays_readable(browser: Browser, digests: list[Path], width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        for path in digests:
            page.goto(path.as_uri())
            # No horizontal scrolling: nothing is wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path.name
            cards = page.locator(".card")
            assert cards.count() >= 1
            box = cards.first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert box["width"] >= min(width - 40, 600)  # uses the screen, single column
            # Body text stays at a readable size on a phone.
            size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.snippet')).fontSize)")
            assert size >= 14
            links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            assert any("/unsubscribe/" in href for href in links)
            assert all(href.startswith(("https://", "http://")) for href in links)
            page.screenshot(path=str(screenshot_path(f"digest-{path.stem}-{width}px")), full_page=True)
    finally:
        page.close()
