"""Reading what was sent, in a real headless Chromium against the real app on loopback: a past
digest's page (JavaScript off) and the archive on the manage page, at 375 px and 1200 px, in the
light and the dark colour scheme — and the email itself in both schemes. Screenshots land in
test-output/ (web-view-*, web-archive-*, web-trending-*, digest-email-*)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
import uvicorn
from playwright.sync_api import Browser, Page
from sqlmodel import col, select

from digest.compose import links
from digest.config import Settings
from digest.db import init_db, make_engine, open_session
from digest.models import Delivery, Subscriber
from digest.pipeline import run_send
from digest.send import OutboxTransport
from tests.browser import browser, screenshot_path  # noqa: F401
from tests.conftest import free_port
from tests.factories import add_papers, paper, subscriber

Scheme = Literal["light", "dark"]
WIDTHS = (375, 1200)
SCHEMES: tuple[Scheme, ...] = ("light", "dark")
DAY = timedelta(days=1)
LONG_AUTHORS = ["Maximilian Alexandrovich Oppenheimer-Schwarzenberg", "Ada Lovelace", "Grace Hopper", "Alan Turing"]


@dataclass
class Reading:
    """The running app and what the test needs of it: a reader's manage URL, one digest's page, its email."""

    base: str
    manage_url: str
    view_url: str
    email_html: Path


def _seed(settings: Settings, now: datetime) -> tuple[str, str, Path]:
    engine = make_engine(settings.database_url)
    init_db(engine)
    with open_session(engine) as session:
        sub = subscriber(session, "ada@example.org", ["agents", '"long context"'], joined=now - 40 * DAY,
                         max_papers=3, trending=2)  # fmt: skip
        for day in range(12, -1, -1):  # twelve past digests (two archive pages) and today's
            seen = now - day * DAY - timedelta(hours=3)
            add_papers(session, *[
                paper(f"2611.{day:02d}{n:03d}", f"Agents with a long context, part {n}: "
                      "Hierarchical Retrieval-Augmented Planning for Extraordinarily-Long-Horizon Tasks",
                      "We study agents over a long context. " * 12, first_seen=seen, authors=LONG_AUTHORS,
                      upvotes=90 - 7 * n, on_hf=True)
                for n in range(6)
            ])  # fmt: skip
            run_send(session, settings, OutboxTransport(settings.outbox_dir), now - day * DAY)
        reader = session.get(Subscriber, sub.id)
        assert reader is not None
        manage = links(settings, reader, now).manage
        newest = session.exec(select(Delivery).order_by(col(Delivery.id).desc())).first()
        assert newest is not None and newest.more_count > 0
    engine.dispose()
    email_html = max(settings.outbox_dir.glob("*.html"), key=lambda p: p.stat().st_mtime_ns)  # today's
    found = re.search(r'href="([^"]+/view/[^"]+)"', email_html.read_text())
    assert found, "the email has no view-in-browser link"
    return manage, found.group(1), email_html


@pytest.fixture(scope="module")
def reading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reading]:
    folder = tmp_path_factory.mktemp("reading")
    port = free_port()
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{folder / 'web.sqlite3'}", base_url=f"http://127.0.0.1:{port}",
        outbox_dir=folder / "outbox", secret_key="browser-reading-test", sources=[], embedding_model="none",
    )  # fmt: skip
    manage, view, email_html = _seed(settings, datetime.now(UTC))
    engine = make_engine(settings.database_url)
    from digest.web.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Reading(settings.base_url, manage, view, email_html)
    server.should_exit = True
    thread.join(timeout=15)
    engine.dispose()


def _rgb(css: str) -> tuple[float, float, float]:
    parts = re.findall(r"[\d.]+", css)
    assert len(parts) >= 3, css
    r, g, b = (float(p) for p in parts[:3])
    return r, g, b


def _luminance(css: str) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = _rgb(css)
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(one: str, two: str) -> float:
    light, dark = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _style(page: Page, selector: str, prop: str) -> str:
    value: str = page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")
    return value


def _readable(page: Page, scheme: Scheme, name: str) -> None:
    """The page's background follows the scheme, and a card's text reads on it (WCAG AA, 4.5:1)."""
    body = _style(page, "body", "backgroundColor")
    assert (_luminance(body) < 0.05) if scheme == "dark" else (_luminance(body) > 0.8), (name, scheme, body)
    card = _style(page, ".card", "backgroundColor")
    for selector in (".snippet", ".title a", ".authors", ".why"):
        if page.locator(selector).count():
            color = _style(page, selector, "color")
            assert _contrast(color, card) >= 4.5, (name, scheme, selector, color, card)
    for highlight in (".snippet .hit", ".snippet mark"):  # a matched word, on its own background
        if page.locator(highlight).count():
            color, behind = _style(page, highlight, "color"), _style(page, highlight, "backgroundColor")
            assert _contrast(color, behind) >= 4.5, (name, scheme, highlight, color, behind)


def _look(browser: Browser, url: str, name: str, *, javascript: bool = True) -> None:
    """Open `url` at each width and scheme: no sideways scrolling, readable, one screenshot each."""
    for scheme in SCHEMES:
        for width in WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme,
                                          java_script_enabled=javascript)  # fmt: skip
            page = context.new_page()
            try:
                assert page.goto(url) is not None
                assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width, scheme)
                _readable(page, scheme, name)
                page.screenshot(path=str(screenshot_path(f"{name}-{scheme}-{width}px")), full_page=True)
            finally:
                context.close()


def test_a_past_digests_page_reads_well_on_a_phone_and_a_desktop_light_and_dark(
    browser: Browser, reading: Reading
) -> None:
    _look(browser, reading.view_url, "web-view", javascript=False)
    context = browser.new_context(viewport={"width": 375, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(reading.view_url)
        assert page.locator("h2.section", has_text="Trending").count() == 1
        assert page.locator("#more .card").count() >= 1  # the papers the cap cut, as cards
        assert page.get_by_text(re.compile(r"\d+ more papers? matched")).count() == 1
        box = page.locator(".card").first.bounding_box()
        assert box is not None and box["width"] >= 375 - 40  # one column, the screen's width
        size = float(page.eval_on_selector(".snippet", "e => parseFloat(getComputedStyle(e).fontSize)"))
        assert size >= 14
    finally:
        context.close()


def test_the_archive_on_the_manage_page_reads_well_and_opens_each_digest(browser: Browser, reading: Reading) -> None:
    _look(browser, reading.manage_url + "#archive", "web-archive")
    _look(browser, reading.manage_url + "?page=2#archive", "web-archive-page-2")
    context = browser.new_context(viewport={"width": 375, "height": 900})
    page = context.new_page()
    try:
        page.goto(reading.manage_url)
        items = page.locator("ol.archive li a")
        assert items.count() == 10
        first = items.first.inner_text()
        page.get_by_role("link", name="Older →").click()
        assert page.locator("ol.archive li a").count() == 3
        page.get_by_role("link", name="← Newer").click()
        page.locator("ol.archive li a").first.click()
        assert page.locator("h1.date").inner_text() == first
    finally:
        context.close()


def test_the_trending_page_reads_well_light_and_dark(browser: Browser, reading: Reading) -> None:
    _look(browser, reading.base + "/trending", "web-trending", javascript=False)


def test_the_sign_up_page_reads_well_light_and_dark(browser: Browser, reading: Reading) -> None:
    _look(browser, reading.base + "/", "web-index-scheme")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_email_is_readable_in_both_colour_schemes(browser: Browser, reading: Reading, scheme: Scheme) -> None:
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        try:
            page.goto(reading.email_html.as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            _readable(page, scheme, "email")
            want = "rgb(31, 41, 55)" if scheme == "dark" else "rgb(255, 255, 255)"
            assert _style(page, ".card", "backgroundColor") == want
            assert page.get_by_role("link", name="View in your browser").count() == 1
            page.screenshot(path=str(screenshot_path(f"digest-email-{scheme}-{width}px")), full_page=True)
        finally:
            context.close()
