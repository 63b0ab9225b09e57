"""What protects every page: security headers, CSRF, the body size cap, rate limits, escaping, and
no redirect off the site.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, SECURE_CSRF_COOKIE, MemoryRateLimiter
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ADA,
    FIXED_EPOCH,
    PENDING,
    UNSUBSCRIBED,
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


def _cookie_attributes(cookie: str) -> dict[str, str]:
    return {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}


def test_the_csrf_cookie_is_host_prefixed_httponly_strict_and_secure(site: Site) -> None:
    """Under https the cookie is __Host-digest_csrf: browsers take it only Secure, Path=/, without
    Domain, so no sibling subdomain or plain-http page can plant a CSRF cookie of its choosing."""
    page = site.new_client().get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{SECURE_CSRF_COOKIE}=")
    attributes = _cookie_attributes(cookie)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert "secure" in attributes  # the base URL is https
    assert attributes["path"] == "Path=/"
    assert "domain" not in attributes
    client = site.client
    client.get("/")
    assert "set-cookie" not in client.get("/").headers  # kept, not replaced on every visit


def test_without_https_the_csrf_cookie_has_no_prefix_and_forms_still_work(
    settings: Settings, engine: Engine, clock: Clock
) -> None:
    plain = Site(settings.model_copy(update={"base_url": "http://localhost:8000"}), engine, clock)
    plain.client = TestClient(plain.app, base_url="http://testserver", follow_redirects=False)
    cookie = plain.client.get("/").headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "secure" not in _cookie_attributes(cookie)
    assert plain.signup().status_code == 200
    assert status_of(plain, ADA) is PENDING


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


def _from(site: Site, host: str) -> TestClient:
    """A browser at this client address (its own CSRF cookie)."""
    client = TestClient(site.app, base_url="https://testserver", follow_redirects=False, client=(host, 40000))
    return client


def _signups_allowed(site: Site, hosts: list[str], tries: int) -> list[int]:
    codes = []
    for n in range(tries):
        client = _from(site, hosts[n % len(hosts)])
        form = {**site.signup_form(f"r{n}@example.org"), CSRF_FIELD: site.csrf(client)}
        codes.append(client.post("/subscribe", data=form).status_code)
    return codes


def test_rate_limits_count_an_ipv6_client_by_its_64(site: Site) -> None:
    """Issue 11 #14: one machine usually holds a whole IPv6 /64; counting per address let it sign up
    without limit by changing its last 64 bits."""
    site.settings.signup_rate_limit = 3
    same_64 = [f"2001:db8:aa:bb:{n:x}::{n + 1:x}" for n in range(5)]
    assert _signups_allowed(site, same_64, 5) == [200, 200, 200, 429, 429]
    assert _signups_allowed(site, ["2001:db8:aa:bc::1"], 1) == [200]  # the next /64 is someone else
    assert _signups_allowed(site, ["::ffff:198.51.100.7", "198.51.100.7"], 4) == [200, 200, 200, 429]
    assert _signups_allowed(site, ["198.51.100.8"], 1) == [200]  # IPv4 stays per address


def test_requests_carrying_link_tokens_are_rate_limited_but_one_click_unsubscribe_never(site: Site) -> None:
    """Issue 11 #1: every token endpoint is counted per visitor, like sign-up (defence in depth for a
    leaked or guessed link); the RFC 8058 one-click POST is not: providers send it for many readers."""
    tokens = confirmed(site)
    site.settings.link_rate_limit = 4
    assert isinstance(site.limiter, MemoryRateLimiter)
    site.limiter.counts.clear()  # the sign-up and confirmation above counted too
    manage, leave = tokens["manage"], tokens["unsubscribe"]
    codes = [site.client.get(f"/manage/{manage}").status_code for _ in range(3)]
    codes.append(site.client.get(f"/api/manage/{manage}").status_code)
    codes.append(site.client.get(f"/unsubscribe/{leave}").status_code)
    codes.append(site.client.post("/api/confirm/whatever").status_code)
    assert codes == [200, 200, 200, 200, 429, 429]
    page = site.client.get(f"/manage/{manage}")
    assert page.status_code == 429 and "Too many requests" in page.text and page.headers["Retry-After"]
    api = site.client.get(f"/api/manage/{manage}")
    assert api.status_code == 429 and api.json() == {"error": "too many requests"}
    assert one_click(site, leave, "urlencoded").status_code == 200  # still unsubscribes
    assert status_of(site, ADA) is UNSUBSCRIBED


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


SLASH_PROBES = ["/api/docs/", "/api/subscribe/", "/subscribe/", "/manage/x/", "/confirm/x/", "/api/manage/x/",
                "/static", "/static/swagger-ui", "/healthz/"]  # fmt: skip


@pytest.mark.parametrize("path", SLASH_PROBES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_forged_host_never_gets_a_redirect_to_itself(site: Site, method: str, path: str) -> None:
    """Issue 11 #14: /api/docs/ answered 307 to https://<the request's Host>/api/docs, so a forged Host
    header (or a cache poisoned with one) sent visitors off to any site. No slash redirects now."""
    client = TestClient(site.app, base_url="https://testserver", follow_redirects=False)
    response = client.request(method, path, headers={"host": "evil.example"})
    assert "evil.example" not in response.headers.get("location", ""), response.headers
    assert not 300 <= response.status_code < 400, (path, response.status_code, response.headers.get("location"))
    assert response.status_code < 500


def test_the_token_routes_never_redirect(site: Site) -> None:
    tokens = confirmed(site)
    pending = pending_with_token(site, "grace@example.org")
    for url in (f"/confirm/{pending}", f"/manage/{tokens['manage']}", f"/unsubscribe/{tokens['unsubscribe']}"):
        form = manage_form() if url.startswith("/manage/") else {}
        for response in (site.client.get(url), site.post(url, form)):
            assert 200 <= response.status_code < 300, (url, response.status_code)
            assert "location" not in response.headers


# --- no cache keeps a token page (issue 11 #14) --------------------------------------------------------


def test_token_pages_and_their_api_answers_are_never_stored(site: Site) -> None:
    tokens = confirmed(site)
    pending = pending_with_token(site, "grace@example.org")
    manage, leave = f"/manage/{tokens['manage']}", f"/unsubscribe/{tokens['unsubscribe']}"
    responses = [
        site.client.get(f"/confirm/{pending}"),
        site.client.get("/confirm/not-a-token"),
        site.client.get(manage),
        site.post(manage, manage_form()),
        site.client.get(leave),
        site.client.get("/manage/not-a-token"),
        site.client.get(f"/api/manage/{tokens['manage']}"),
        site.client.put(f"/api/manage/{tokens['manage']}", json=json_prefs()),
        site.client.get("/api/manage/not-a-token"),
        site.client.post(f"/api/manage/{tokens['manage']}/pause"),
        site.client.post(f"/api/confirm/{pending}"),
        site.client.post("/api/unsubscribe/not-a-token"),
        site.post(f"/confirm/{pending}"),
        site.post(leave),
    ]
    for response in responses:
        assert response.headers.get("cache-control") == "no-store", (response.request.url, response.status_code)
    assert "cache-control" not in site.client.get("/static/site.css").headers  # the rest may be cached
