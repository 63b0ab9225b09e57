"""What operators and tools call: health endpoints, the OpenAPI schema and the API docs page.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    Site,
    clock,
    site,
)


def test_health_endpoints(site: Site) -> None:
    assert site.client.get("/healthz").json() == {"status": "ok"}
    ready = site.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


def test_openapi_lists_the_api_and_only_the_api(site: Site) -> None:
    response = site.client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/subscribe": {"post"},
        "/api/resend": {"post"},
        "/api/preview": {"post"},
        "/api/confirm/{token}": {"post"},
        "/api/manage/{token}": {"get", "put"},
        "/api/manage/{token}/{action}": {"post"},
        "/api/unsubscribe/{token}": {"post"},
    } == {path: set(methods) for path, methods in paths.items()}
    docs = site.client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text


def test_the_api_docs_page_works_under_its_own_content_security_policy(site: Site) -> None:
    """The docs page is only useful if the browser may run its scripts: its CSP must allow them."""
    page = site.client.get("/api/docs")
    assert page.status_code == 200
    directives: dict[str, list[str]] = dict(
        (d.split()[0], d.split()[1:]) for d in page.headers["content-security-policy"].split(";") if d.strip()
    )
    allowed: list[str] = directives.get("script-src", directives.get("default-src", []))
    off_site = [src for src in re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.text) if urlsplit(src).netloc]
    inline = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", page.text, re.S)
    blocked = [src for src in off_site if not any(src.startswith(source) for source in allowed if "/" in source)]
    for body in inline:
        digest = "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        if body.strip() and "'unsafe-inline'" not in allowed and digest not in allowed:
            blocked.append("an inline <script>")
    assert blocked == [], f"/api/docs loads scripts its CSP (script-src {' '.join(allowed)}) blocks: {blocked}"
