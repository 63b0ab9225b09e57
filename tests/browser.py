"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for layout and web tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import require

CHROMIUM = os.environ.get("DIGEST_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]  # fmt: skip
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module (Playwright's sync driver keeps an event loop running meanwhile)."""
    require(f"Chromium at {CHROMIUM}", Path(CHROMIUM).exists())
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def screenshot_path(name: str) -> Path:
    """Where a test saves a screenshot for people to look at."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / f"{name}.png"
