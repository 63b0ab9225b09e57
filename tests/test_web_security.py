"""What protects every page: security headers, CSRF, the body size cap, rate limits, escaping, and
no redirect off the site.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, MemoryRateLimiter
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ADA,
    FIXED_EPOCH,
    PENDING,
    Clock,
    Site,
    assert_forbidden,
    assert_not_off_site,
    assert_security_headers,
    clock,
    confirmed,
    input_value,
    json_prefs,
    manage_form,
    nothing_stored,
    one_click,
    pending_with_token,
    site,
    status_of,
    textarea,
)

# --- CSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "empty", "wrong", "no-cookie", "another-visitors"])
def test_signup_without_a_matching_csrf_token_is_forbidden(site: Site, how: str) -> None:
    form = site.signup_form()
    client = site.client
    if how == "missing":
        del form[CSRF_FIELD]
    elif how == "empty":
        form[CSRF_FIELD] = ""
    elif how == "wrong":
        form[CSRF_FIELD] = "0" * 64
    elif how == "no-cookie":
        client = site.new_client()  # the right token, but the browser has no cookie
    elif how == "another-visitors":
        other = site.new_client()
        form[CSRF_FIELD] = site.csrf(other)  # someone else's token with our cookie
    response = client.post("/subscribe", data=form)
    assert_forbidden(response)
    nothing_stored(site)


def test_a_link_post_without_csrf_is_forbidden_before_its_token_is_read(site: Site) -> None:
    """The CSRF check comes first on every form POST: a forged one gets 403 whatever its link."""
    for path in ("/confirm/not-a-token", "/manage/not-a-token", "/unsubscribe/not-a-token"):
        assert_forbidden(site.post(path, manage_form(), csrf=False))
        assert_forbidden(site.new_client().post(path, data={CSRF_FIELD: site.csrf()}))


def test_the_csrf_cookie_is_httponly_strict_and_secure(site: Site) -> None:
    page = site.new_client().get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert "secure" in attributes  # the base URL is https
    assert attributes["path"] == "Path=/"
    client = site.client
    client.get("/")
    assert "set-cookie" not in client.get("/").headers  # kept, not replaced on every visit


# --- rate limits ----------------------------------------------------------------------------------


def test_too_many_signups_from_one_client_are_refused_with_retry_after(site: Site) -> None:
    limit = site.settings.signup_rate_limit
    for n in range(limit):
        assert site.signup(f"reader{n}@example.org").status_code == 200
    response = site.signup("one-too-many@example.org")
    assert response.status_code == 429
    retry = int(response.headers["retry-after"])
    assert 0 < retry <= site.settings.rate_window_seconds
    assert "Too many requests" in response.text
    assert site.subscriber("one-too-many@example.org") is None
    assert len(site.subscribers()) == limit
    api = site.client.post("/api/subscribe", json=json_prefs(email="api@example.org"))
    assert api.status_code == 429
    assert int(api.headers["retry-after"]) > 0
    assert site.subscriber("api@example.org") is None


def test_the_rate_limit_window_resets(settings: Settings, engine: Engine, clock: Clock) -> None:
    now = [FIXED_EPOCH]
    settings.signup_rate_limit = 2
    site = Site(settings, engine, clock, limiter=MemoryRateLimiter(clock=lambda: now[0]))
    assert site.signup("a@example.org").status_code == 200
    assert site.signup("b@example.org").status_code == 200
    assert site.signup("c@example.org").status_code == 429
    now[0] += settings.rate_window_seconds
    assert site.signup("c@example.org").status_code == 200


# --- headers --------------------------------------------------------------------------------------


def test_every_page_carries_the_security_headers(site: Site) -> None:
    tokens = confirmed(site, "grace@example.org")
    pending = pending_with_token(site)
    responses = [
        site.client.get("/"),
        site.client.post("/subscribe", data=site.signup_form(email="nope")),
        site.client.post("/subscribe", data={"email": ADA}),  # 403
        site.client.get(f"/confirm/{pending}"),
        site.client.get("/confirm/bad-token"),
        site.client.get(f"/manage/{tokens['manage']}"),
        site.client.get(f"/unsubscribe/{tokens['unsubscribe']}"),
        site.client.get("/no-such-page"),
        site.client.get("/api/no-such-thing"),
        site.client.get("/api/docs"),
        site.client.get("/api/openapi.json"),
        site.client.get("/static/site.css"),
        site.client.post("/subscribe", content=b"x" * (site.settings.max_body_bytes + 1)),
        one_click(site, tokens["unsubscribe"], "urlencoded"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 403, 200, 400, 200, 200, 404, 404, 200, 200, 200, 413, 200]
    for response in responses:
        assert_security_headers(response)


# --- the body size cap ----------------------------------------------------------------------------


def _padded_form(site: Site, size: int) -> bytes:
    form = httpx.QueryParams(site.signup_form())
    return (str(form) + "&padding=" + "x" * size).encode()


def test_a_body_over_the_cap_with_content_length_is_413(site: Site) -> None:
    cap = site.settings.max_body_bytes
    body = _padded_form(site, cap)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = site.client.post("/subscribe", content=body, headers=headers)
    assert response.status_code == 413
    api = site.client.post("/api/subscribe", json=json_prefs(email=ADA, topics=["x" * cap]))
    assert api.status_code == 413
    nothing_stored(site)
    small = _padded_form(site, 1000)  # the same form under the cap goes through
    assert site.client.post("/subscribe", content=small, headers=headers).status_code == 200


def _chunks(body: bytes, size: int = 16_384) -> Any:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _multipart(fields: dict[str, str], boundary: str = "digest-test-boundary") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("path", ["/subscribe", "/preview", "/resend"])
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_chunked_form_body_over_the_cap_is_413(site: Site, encoding: str, path: str) -> None:
    padding = "x" * site.settings.max_body_bytes
    if encoding == "urlencoded":
        body = _padded_form(site, site.settings.max_body_bytes)
        content_type = "application/x-www-form-urlencoded"
    else:
        body = _multipart({**site.signup_form(), "padding": padding})
        content_type = "multipart/form-data; boundary=digest-test-boundary"
    response = site.client.post(path, content=_chunks(body), headers={"content-type": content_type})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text[:200]
    nothing_stored(site)


def test_a_chunked_form_under_the_cap_goes_through(site: Site) -> None:
    body = _multipart(site.signup_form())
    headers = {"content-type": "multipart/form-data; boundary=digest-test-boundary"}
    response = site.client.post("/subscribe", content=_chunks(body, 10), headers=headers)
    assert response.status_code == 200
    assert status_of(site, ADA) is PENDING


def test_a_chunked_json_body_over_the_cap_is_413(site: Site) -> None:
    body = json.dumps(json_prefs(email=ADA, topics=["x" * site.settings.max_body_bytes])).encode()
    response = site.client.post("/api/subscribe", content=_chunks(body), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    nothing_stored(site)


# --- escaping and redirects -----------------------------------------------------------------------


XSS = "<script>alert(1)</script>"


def test_what_visitors_typed_is_escaped_when_echoed(site: Site) -> None:
    response = site.client.post(
        "/subscribe",
        data=site.signup_form(email='"><script>alert(1)</script>@x', topics=f'"</textarea>{XSS}'),
    )
    assert response.status_code == 400
    assert "<script>alert" not in response.text
    assert "</textarea><script>" not in response.text
    assert textarea(response.text) == f'"</textarea>{XSS}'
    assert input_value(response.text, "email") == '"><script>alert(1)</script>@x'
    preview = site.client.post("/preview", data=site.signup_form(topics=f"{XSS}\n{XSS} AND"))
    assert "<script>alert" not in preview.text
    nothing_stored(site)


def test_stored_topics_are_escaped_on_every_page(site: Site) -> None:
    token = pending_with_token(site, ADA, f'"{XSS}"\ntitle:<b>bold</b>')
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == [f'"{XSS}"', "title:<b>bold</b>"]
    confirm_page = site.client.get(f"/confirm/{token}")
    assert confirm_page.status_code == 200
    tokens = site.tokens(ADA)
    assert site.post(f"/confirm/{token}").status_code == 200
    manage_page = site.client.get(f"/manage/{tokens['manage']}")
    assert textarea(manage_page.text) == f'"{XSS}"\ntitle:<b>bold</b>'
    for page in (confirm_page, manage_page):
        assert "<script>alert" not in page.text
        assert "<b>bold" not in page.text


REDIRECT_PROBES = [
    "/?next=https://evil.example/",
    "/?redirect=//evil.example",
    "//evil.example/",
    "//evil.example",
    "/\\evil.example/",
    "/%2F%2Fevil.example/",
    "/%5Cevil.example",
    "/static",
    "/static//evil.example",
    "/api/docs/",
    "/api/",
    "/confirm/x/",
    "/confirm//evil.example/",
    "/manage/x/",
    "/manage///evil.example/",
    "/unsubscribe/x/",
    "/unsubscribe/https:%2F%2Fevil.example/",
    "/api/manage/x/",
    "/api/unsubscribe/x/",
    "/subscribe/",
    "/subscribe?next=https://evil.example",
    "/resend?return=https://evil.example",
]


@pytest.mark.parametrize("path", REDIRECT_PROBES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_route_redirects_off_site(site: Site, method: str, path: str) -> None:
    url = f"https://testserver{path}"  # keep the path as typed (httpx would read //host as a host)
    if method == "GET":
        response = site.client.get(url)
    else:
        response = site.client.post(url, data={**site.signup_form(), "next": "https://evil.example/"})
    assert_not_off_site(response)
    assert_security_headers(response)


def test_the_token_routes_never_redirect(site: Site) -> None:
    tokens = confirmed(site)
    pending = pending_with_token(site, "grace@example.org")
    for url in (f"/confirm/{pending}", f"/manage/{tokens['manage']}", f"/unsubscribe/{tokens['unsubscribe']}"):
        form = manage_form() if url.startswith("/manage/") else {}
        for response in (site.client.get(url), site.post(url, form)):
            assert 200 <= response.status_code < 300, (url, response.status_code)
            assert "location" not in response.headers
