"""What operators and tools call: health endpoints, the OpenAPI schema and the API docs page.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.web.ops import SWAGGER_UI_DIR, SWAGGER_UI_FILES
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    Clock,
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
        "/api/feedback/{token}": {"get", "post", "delete"},
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


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_the_api_docs_load_swagger_ui_from_this_app_with_integrity_hashes(site: Site) -> None:
    """Issue 11 #14: Swagger UI came from an unpinned CDN with no integrity check. Now its files are
    the pinned fastapi-offline package's, served here, each with an SRI hash the browser checks."""
    page = site.client.get("/api/docs")
    assert page.status_code == 200
    assets = re.findall(r'<(?:script|link)[^>]*\s(?:src|href)="([^"]+)"[^>]*>', page.text)
    assert len(assets) == 3, assets  # Swagger UI's bundle and stylesheet, and our starter script
    for url in assets:
        assert not urlsplit(url).netloc, f"{url} is loaded from another site"
    for tag in re.findall(r"<(?:script|link)[^>]*/static/swagger-ui/[^>]*>", page.text):
        url = re.findall(r'(?:src|href)="([^"]+)"', tag)[0]
        served = site.client.get(url)
        assert served.status_code == 200, url
        assert f'integrity="{_sri(served.content)}"' in tag, f"{url}: its integrity hash is not the one served"
    csp = page.headers["content-security-policy"]
    assert "http" not in csp and "'unsafe-inline'" not in csp, csp


@pytest.mark.parametrize("name", sorted(SWAGGER_UI_FILES))
def test_the_pinned_swagger_ui_hashes_are_the_installed_packages_files(name: str) -> None:
    actual = _sri((SWAGGER_UI_DIR / name).read_bytes())
    assert SWAGGER_UI_FILES[name] == actual, (
        f"{SWAGGER_UI_DIR / name} changed (fastapi-offline upgraded?): after reviewing it, pin {actual!r} "
        "in digest/web/ops.py SWAGGER_UI_FILES"
    )


# --- /metrics: not on the public app unless a bearer token is configured (issue 11 #8) -------------

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


def test_metrics_are_not_served_without_a_configured_token(site: Site) -> None:
    """The public /metrics told whether a sign-up queued an email (whether an address is suppressed
    or was mailed in the last 24 h). Without DIGEST_METRICS_TOKEN it does not exist: 404."""
    assert getattr(site.settings, "metrics_token", None) is None
    for headers in ({}, {"authorization": "Bearer "}, {"authorization": f"Bearer {METRICS_TOKEN}"}):
        response = site.client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert "digest_" not in response.text
    assert response.json() == site.client.get("/no-such-page").json()  # like any unknown path


def test_metrics_need_the_bearer_token_when_one_is_configured(settings: Settings, engine: Engine, clock: Clock) -> None:
    site = Site(settings.model_copy(update={"metrics_token": METRICS_TOKEN}), engine, clock)
    for wrong in ({}, {"authorization": METRICS_TOKEN}, {"authorization": f"Bearer {METRICS_TOKEN}x"},
                  {"authorization": f"Basic {METRICS_TOKEN}"}, {"authorization": "Bearer"}):  # fmt: skip
        response = site.client.get("/metrics", headers=wrong)
        assert response.status_code == 401, wrong
        assert response.headers["www-authenticate"] == "Bearer"
        assert "digest_" not in response.text
    good = site.client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("text/plain")
    assert "digest_suppressed_addresses" in good.text
