"""The whole reader journey in a real headless Chromium against the real app on loopback, with the
emails read from a real SMTP server: sign up, confirm, get a digest, unsubscribe, get nothing — on
topics, with no topic at all (the trending papers), and with a paper the reader liked (the real
embedding model)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, ViewportSize, expect
from sqlmodel import select

from digest.config import Settings, SourceKind
from digest.db import init_db, make_engine, open_session
from digest.demo import SAMPLES
from digest.embed import embed_missing, load_embedder
from digest.ingest import ingest_bytes
from digest.models import Paper, Subscriber, SubscriberStatus
from digest.pipeline import run_send
from digest.send import make_transport
from digest.web.app import create_app
from tests.browser import browser, screenshot_path  # noqa: F401
from tests.conftest import FreshDatabase, free_port
from tests.factories import add_papers, paper
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

PHONE: ViewportSize = {"width": 375, "height": 812}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        init_db(self.engine)
        app = create_app(settings, engine=self.engine, send_in_process=True)
        port = int(settings.base_url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.engine.dispose()


@pytest.fixture
def live(tmp_path: Path, smtp_server: SmtpServer, fresh_database: FreshDatabase) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,
        database_url=fresh_database("web"),
        base_url=f"http://127.0.0.1:{free_port()}",
        smtp_url=smtp_server.url,
        smtp_timeout=5.0,
        from_address="Paper Digest <digest@example.org>",
        secret_key="browser-test",
        sources=[],
    )
    with LiveServer(settings) as server:
        yield server


def _shot(page: Page, name: str) -> None:
    """Save the page as it looks on a phone and on a desktop, and check the phone layout fits."""
    for label, size in (("375px", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(screenshot_path(f"web-{name}-{label}")), full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], f"{name} scrolls sideways"


def _wait_for_mail(smtp: SmtpServer, to: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.to(to)) < count:
        assert time.monotonic() < deadline, f"no email #{count} for {to}"
        time.sleep(0.1)


def _link(text: str, path: str) -> str:
    found = re.search(rf"(http://127\.0\.0\.1:\d+/{path}/[A-Za-z0-9._\-]+)", text)
    assert found, f"no /{path}/ link in:\n{text}"
    return found.group(1)


def test_sign_up_confirm_receive_unsubscribe(browser: Browser, live: LiveServer, smtp_server: SmtpServer) -> None:
    now = datetime.now(UTC)
    with open_session(live.engine) as session:
        seen = now - timedelta(hours=1)
        add_papers(
            session,
            paper(
                "2611.04001",
                "Efficient KV Cache Compression for Long Context",
                "We shrink the KV cache.",
                first_seen=seen,
            ),
            paper("2611.04002", "Protein Folding at Scale", "Biology.", first_seen=seen),
        )
    send_hour = (now + timedelta(hours=1)).hour
    page = browser.new_page(viewport=PHONE)
    try:
        _sign_up(page, live, send_hour)
        _confirm(page, live, smtp_server)
        send_at = datetime.combine((now + timedelta(hours=1)).date(), datetime.min.time(), tzinfo=UTC)
        send_at += timedelta(hours=send_hour, minutes=5)
        unsubscribe_link = _receive_digest(live, smtp_server, send_at)
        _unsubscribe(page, unsubscribe_link)
        with open_session(live.engine) as session:
            add_papers(session, paper("2611.04003", "More KV Cache Tricks", first_seen=send_at + timedelta(hours=2)))
            again = run_send(session, live.settings, make_transport(live.settings), send_at + timedelta(days=1))
        assert sum(again.counts.values()) == 0
        time.sleep(0.5)
        assert len(smtp_server.to("reader@example.org")) == 2  # the confirmation and one digest, nothing after
    finally:
        page.close()


def _sign_up(page: Page, live: LiveServer, send_hour: int) -> None:
    page.goto(live.settings.base_url + "/")
    assert page.title().startswith("Subscribe")
    page.fill("#email", "Reader@Example.org")
    page.fill("#topics", '"KV cache"\ncat:cs.CV segmentation')
    page.wait_for_selector("#preview:not([hidden]) .papers li")  # the live preview, with a little JavaScript
    assert "Efficient KV Cache Compression" in page.inner_text("#preview")
    page.select_option("#timezone", "UTC")
    page.select_option("#send_hour", str(send_hour))
    _shot(page, "1-signup")
    page.click("button.primary")
    page.wait_for_selector("text=Check your inbox")
    _shot(page, "2-check-inbox")


def _confirm(page: Page, live: LiveServer, smtp_server: SmtpServer, to: str = "reader@example.org") -> None:
    _wait_for_mail(smtp_server, to, 1)
    confirmation = smtp_server.to(to)[0].message
    assert confirmation["Subject"] == "Confirm your subscription to Paper Digest"
    assert confirmation["List-Unsubscribe"] is None
    text = confirmation.get_body(("plain",))
    assert text is not None
    confirm_link = _link(text.get_content(), "confirm")

    page.goto(confirm_link)
    page.wait_for_selector("#confirm-button")
    _shot(page, "3-confirm")
    with open_session(live.engine) as session:
        (sub,) = session.exec(select(Subscriber))
        assert sub.status is SubscriberStatus.PENDING  # opening the link alone changes nothing
    page.click("#confirm-button")
    page.wait_for_selector("text=You are subscribed")
    _shot(page, "4-confirmed")


# Hugging Face papers of the last hour with their upvotes, in no particular order, and one arXiv paper.
TRENDING = [("2611.05001", "Sparse Mixtures for Speech", 90), ("2611.05002", "World Models from Video", 300),
            ("2611.05003", "Tiny Recursive Reasoners", 150), ("2611.05004", "A Benchmark for Tables", 20)]  # fmt: skip


def test_sign_up_with_no_topic_receives_the_trending_papers(
    browser: Browser, live: LiveServer, smtp_server: SmtpServer
) -> None:
    now = datetime.now(UTC)
    seen = now - timedelta(hours=1)
    with open_session(live.engine) as session:
        hf = [paper(pid, title, first_seen=seen, upvotes=votes, on_hf=True, sources=("hf",))
              for pid, title, votes in TRENDING]  # fmt: skip
        add_papers(session, *hf, paper("2611.05005", "Only on arXiv", first_seen=seen))
    send_hour = (now + timedelta(hours=1)).hour
    page = browser.new_page(viewport=PHONE)
    try:
        _sign_up_for_trending(page, live, send_hour)
        _confirm(page, live, smtp_server, "trends@example.org")
        send_at = datetime.combine((now + timedelta(hours=1)).date(), datetime.min.time(), tzinfo=UTC)
        with open_session(live.engine) as session:
            report = run_send(
                session, live.settings, make_transport(live.settings), send_at + timedelta(hours=send_hour, minutes=5)
            )
        assert report.counts["sent"] == 1
    finally:
        page.close()
    digest = smtp_server.to("trends@example.org")[1].message
    html = digest.get_body(("html",))
    assert html is not None
    body = html.get_content()
    titles = ["World Models from Video", "Tiny Recursive Reasoners", "Sparse Mixtures for Speech"]
    where = [body.find(t) for t in titles]
    assert -1 not in where and where == sorted(where), where  # the top 3 by upvotes, in order
    assert "A Benchmark for Tables" not in body and "Only on arXiv" not in body
    ranks = re.findall(r">#(\d+)[^<·]*· (\d+) upvotes\b", body)  # each card's "#1 today · 300 upvotes"
    assert ranks == [("1", "300"), ("2", "150"), ("3", "90")], ranks


def _sign_up_for_trending(page: Page, live: LiveServer, send_hour: int) -> None:
    """Leave the topics empty: the box is ticked by the page, the preview is the trending list."""
    page.goto(live.settings.base_url + "/")
    page.fill("#email", "trends@example.org")
    assert page.is_checked("#trending")  # ticked while the topic box is empty
    page.fill("#trending_count", "3")
    expect(page.locator("#preview-body .papers li")).to_have_count(3)  # the preview follows the number
    preview = page.inner_text("#preview")
    assert "Trending on Hugging Face" in preview and "A Benchmark for Tables" not in preview
    assert preview.index("#1 · 300 upvotes") < preview.index("#2 · 150 upvotes") < preview.index("#3 · 90 upvotes")
    page.fill("#topics", "agents")  # typing a topic unticks it (topics only) …
    assert not page.is_checked("#trending")
    page.fill("#topics", "")  # … and emptying the box ticks it again
    assert page.is_checked("#trending")
    page.select_option("#timezone", "UTC")
    page.select_option("#send_hour", str(send_hour))
    _shot(page, "9-signup-trending")
    page.click("button.primary")
    page.wait_for_selector("text=Check your inbox")
    with open_session(live.engine) as session:
        (sub,) = session.exec(select(Subscriber).where(Subscriber.email == "trends@example.org"))
        assert (sub.topics, sub.trending) == ([], 3)


LIKED = "xKV: Cross-Layer SVD for KV-Cache Compression"


def test_sign_up_with_a_paper_you_liked_sees_what_it_brings_and_gets_it(
    browser: Browser, live: LiveServer, smtp_server: SmtpServer
) -> None:
    """The sample arXiv listing, embedded by the real model: a visitor types the title of a paper
    they liked, the live preview shows the papers close to it (each saying so), a malformed id is
    named in the preview, and the sign-up stores one `like:ID` topic whose digest says the same."""
    now = datetime.now(UTC)
    with open_session(live.engine) as session:
        listing = (SAMPLES / "arxiv-listing.rss").read_bytes()
        ingest_bytes(session, listing, SourceKind.ARXIV_RSS, "arxiv", now - timedelta(hours=1))
        embedder = load_embedder("minilm-int8")
        assert embedder is not None and embed_missing(session, embedder) > 30
        example = session.exec(select(Paper).where(Paper.title == LIKED)).one()
    send_hour = (now + timedelta(hours=1)).hour
    page = browser.new_page(viewport=PHONE)
    try:
        close = _sign_up_with_a_paper_you_liked(page, live, send_hour, example.id)
        _confirm(page, live, smtp_server, "liked@example.org")
        send_at = datetime.combine((now + timedelta(hours=1)).date(), datetime.min.time(), tzinfo=UTC)
        with open_session(live.engine) as session:
            at = send_at + timedelta(hours=send_hour, minutes=5)
            assert run_send(session, live.settings, make_transport(live.settings), at).counts["sent"] == 1
    finally:
        page.close()
    text = smtp_server.to("liked@example.org")[1].message.get_body(("plain",))
    assert text is not None
    body = " ".join(text.get_content().split())
    assert close[0] in body and f"Matched: close to your example {LIKED}" in body
    assert f"1. {LIKED}" not in body  # the example is the reader's own, never "like" itself


def _sign_up_with_a_paper_you_liked(page: Page, live: LiveServer, send_hour: int, example_id: str) -> list[str]:
    """Type a liked paper's title (case and spacing aside) and sign up; the titles the preview showed."""
    page.goto(live.settings.base_url + "/")
    page.fill("#email", "liked@example.org")
    page.fill("#examples", "  xkv: cross-layer SVD for KV-cache   compression")
    liked = page.locator("#preview-body .liked")
    expect(liked).to_have_text(f"Papers you liked: {LIKED} ({example_id})")  # the live preview, resolved
    whys = page.locator("#preview-body .papers .why").all_inner_texts()
    assert whys and set(whys) == {f"Matched: close to your example {LIKED}"}, whys
    titles = page.locator("#preview-body .papers li > a").all_inner_texts()
    assert LIKED not in titles and any(re.search(r"kv|cache", t, re.I) for t in titles[:3]), titles
    assert not page.is_checked("#trending")  # a paper typed is a topic: the box follows the two boxes
    page.fill("#examples", "2406.123")
    expect(page.locator("#preview-body .error")).to_contain_text("'2406.123' is not an arXiv id like 2406.12345")
    page.fill("#examples", f"https://arxiv.org/abs/{example_id}v2")
    expect(liked).to_have_text(f"Papers you liked: {LIKED} ({example_id})")
    page.select_option("#timezone", "UTC")
    page.select_option("#send_hour", str(send_hour))
    _shot(page, "10-signup-liked")
    page.click("button.primary")
    page.wait_for_selector("text=Check your inbox")
    with open_session(live.engine) as session:
        (sub,) = session.exec(select(Subscriber).where(Subscriber.email == "liked@example.org"))
        assert (sub.topics, sub.trending) == ([f"like:{example_id}"], None)
    return titles


def _receive_digest(live: LiveServer, smtp_server: SmtpServer, send_at: datetime) -> str:
    """Send the digests due at send_at; the reader's one digest's unsubscribe link."""
    with open_session(live.engine) as session:
        report = run_send(session, live.settings, make_transport(live.settings), send_at)
    assert report.counts["sent"] == 1
    digest = smtp_server.to("reader@example.org")[1].message
    assert digest["Subject"].startswith("1 new paper on KV cache")
    html = digest.get_body(("html",))
    assert html is not None
    unsubscribe_link = _link(html.get_content(), "unsubscribe")
    assert digest["List-Unsubscribe"] == f"<{unsubscribe_link}>"
    return unsubscribe_link


def _unsubscribe(page: Page, unsubscribe_link: str) -> None:
    page.goto(unsubscribe_link)
    page.wait_for_selector("#unsubscribe-button")
    _shot(page, "5-unsubscribe")
    page.click("#unsubscribe-button")
    page.wait_for_selector("text=You are unsubscribed")
    _shot(page, "6-unsubscribed")


def test_signup_works_without_javascript(browser: Browser, live: LiveServer, smtp_server: SmtpServer) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(live.settings.base_url + "/")
        page.fill("#email", "nojs@example.org")
        page.fill("#topics", "agents AND")
        page.click("button.primary")
        assert "column 8: AND needs a term after it" in page.inner_text("#topics-error")
        _shot(page, "7-error-no-js")
        page.fill("#topics", "agents")
        page.click("#preview-button")
        page.wait_for_selector("#preview h2")
        page.click("button.primary")
        page.wait_for_selector("text=Check your inbox")
        _wait_for_mail(smtp_server, "nojs@example.org", 1)
    finally:
        context.close()


def _problems_of(page: Page, site: str) -> list[str]:
    """What goes wrong on a page as it loads: console errors (a CSP block, an SRI mismatch), failed
    requests, error answers (the browser's own /favicon.ico aside), and requests to other sites."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:  # answers: below
            problems.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            problems.append(f"{answer.status}: {answer.url}")

    def request(sent: Request) -> None:
        if not sent.url.startswith(site):
            problems.append(f"off-site: {sent.url}")

    page.on("console", console)
    page.on("response", response)
    page.on("request", request)
    page.on("requestfailed", lambda sent: problems.append(f"failed: {sent.url}"))
    return problems


def test_the_api_docs_render_from_our_own_files_under_the_sites_csp(browser: Browser, live: LiveServer) -> None:
    """Swagger UI is served by the app with integrity hashes and started by a script file: in a real
    browser it must load (no SRI mismatch, nothing blocked by the CSP) and list the API."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    problems = _problems_of(page, live.settings.base_url)
    try:
        page.goto(live.settings.base_url + "/api/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.textContent)")
        assert "/api/subscribe" in "".join(paths)
        page.screenshot(path=str(screenshot_path("web-8-api-docs-desktop")), full_page=False)
    finally:
        context.close()
    assert problems == []
