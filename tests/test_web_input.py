"""What broken or hostile input gets at the edge: text that is not text (a lone surrogate in JSON,
bytes that are not UTF-8 in a form, control characters) and form fields sent as files. Always the
form's own error next to the field, or the API's 422 naming it — never a 500, never stored.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx2 import Response as ClientResponse

from digest.web.forms import NOT_A_FILE, NOT_TEXT
from digest.web.security import CSRF_FIELD
from tests.webclient import (  # noqa: F401  (clock, site, papers: fixtures)
    ADA,
    Site,
    all_errors,
    clock,
    confirmed,
    field_error,
    json_prefs,
    manage_form,
    nothing_stored,
    papers,
    site,
)

SURROGATE = "\ud800"  # json.dumps writes it as the escape "\ud800", as an attacker's JSON would


def _post_json(site: Site, method: str, path: str, body: dict[str, Any]) -> ClientResponse:
    content = json.dumps(body).encode()
    assert b"\\ud800" in content or b"\\u0000" in content
    response: ClientResponse = site.client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    return response


# --- JSON: refused at the edge, 422 naming the field (issue 11 #2) ----------------------------------

API_TEXT_FIELDS = [
    ("POST", "/api/subscribe", json_prefs(email=f"a{SURROGATE}@example.org"), "email"),
    ("POST", "/api/subscribe", json_prefs(email=ADA, topics=[f"diffusion {SURROGATE}"]), "topics.0"),
    ("POST", "/api/subscribe", json_prefs(email=ADA, topics=["diffusion", f"{SURROGATE}x"]), "topics.1"),
    ("POST", "/api/subscribe", json_prefs(email=ADA, timezone=f"UTC{SURROGATE}"), "timezone"),
    ("POST", "/api/subscribe", json_prefs(email=ADA, topics=["diffusion\u0000"]), "topics.0"),
    ("POST", "/api/resend", {"email": f"{SURROGATE}@example.org"}, "email"),
    ("POST", "/api/preview", {"topics": [f"diffusion OR x{SURROGATE}"]}, "topics.0"),
    ("POST", "/api/preview", {"topics": [f"title:{SURROGATE} OR diffusion"]}, "topics.0"),
    ("PUT", "/api/manage/{manage}", json_prefs(topics=[f"agents {SURROGATE}"]), "topics.0"),
    ("PUT", "/api/manage/{manage}", json_prefs(timezone=SURROGATE), "timezone"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), API_TEXT_FIELDS)
def test_api_refuses_text_that_is_not_text_with_422_naming_the_field(
    site: Site, papers: None, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    """Before: /api/preview answered 500 (the match carried the surrogate into the JSON answer), and
    /api/subscribe stored it, so the confirmation email could not be built."""
    tokens = confirmed(site, "grace@example.org")
    before = [(s.email, s.topics, s.timezone) for s in site.subscribers()]
    response = _post_json(site, method, path.format(**tokens), body)
    assert response.status_code == 422, response.text
    assert response.json() == {"errors": {field: NOT_TEXT}}
    assert [(s.email, s.topics, s.timezone) for s in site.subscribers()] == before
    assert site.subscriber(ADA) is None


# --- forms: bytes that are not UTF-8 get the field's error --------------------------------------------

NOT_UTF8 = ["%ED%A0%80", "%FF", "caf%E9", "%C3"]  # an encoded surrogate, bytes no UTF-8 has, Latin-1, cut short


def _urlencoded(site: Site, fields: dict[str, str], raw: dict[str, str]) -> ClientResponse:
    """A form POST whose `raw` fields are sent as given (already percent-encoded)."""
    body = str(httpx.QueryParams({k: v for k, v in fields.items() if k not in raw}))
    body += "".join(f"&{name}={value}" for name, value in raw.items())
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response: ClientResponse = site.client.post("/subscribe", content=body.encode(), headers=headers)
    return response


@pytest.mark.parametrize("raw", NOT_UTF8)
@pytest.mark.parametrize("name", ["email", "topics", "timezone", "send_hour", "max_papers"])
def test_a_signup_field_that_is_not_utf8_gets_its_error(site: Site, name: str, raw: str) -> None:
    """Starlette reads such bytes as U+FFFD and goes on; the form says the field is not text."""
    response = _urlencoded(site, site.signup_form(), {name: raw})
    assert response.status_code == 400, response.text[:300]
    assert field_error(response.text, name) == NOT_TEXT, all_errors(response.text)
    nothing_stored(site)


def test_valid_utf8_in_a_urlencoded_form_is_read_exactly(site: Site) -> None:
    response = _urlencoded(site, site.signup_form(), {"topics": "Schr%C3%B6dinger+bridge%0A%E6%95%B0%E5%AD%A6"})
    assert response.status_code == 200, all_errors(response.text)
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == ["Schrödinger bridge", "数学"]


@pytest.mark.parametrize("value", ["diffusion\x00", "agents\x1b[31m", "x\x7f"])
def test_control_characters_are_not_text(site: Site, value: str) -> None:
    response = site.client.post("/subscribe", data=site.signup_form(topics=value))
    assert response.status_code == 400
    assert field_error(response.text, "topics") == NOT_TEXT
    nothing_stored(site)


def test_the_manage_form_refuses_text_that_is_not_text(site: Site) -> None:
    tokens = confirmed(site)
    form = {**manage_form(), CSRF_FIELD: site.csrf()}
    body = str(httpx.QueryParams({k: v for k, v in form.items() if k != "topics"})) + "&topics=%ED%A0%80"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = site.client.post(f"/manage/{tokens['manage']}", content=body.encode(), headers=headers)
    assert response.status_code == 400
    assert field_error(response.text, "topics") == NOT_TEXT
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == ["diffusion"]


# --- forms: a field sent as a file upload (issue 11 #14) ------------------------------------------------


@pytest.mark.parametrize("name", ["email", "topics", "timezone", "frequency", "send_hour", "weekly_day",
                                  "min_upvotes", "max_papers"])  # fmt: skip
def test_a_signup_field_sent_as_a_file_gets_its_error(site: Site, name: str) -> None:
    """Before, the file was dropped: an hour sent as a file signed up with the default hour."""
    form = site.signup_form()
    files = {name: ("field.txt", form.pop(name).encode() or b"x", "text/plain")}
    response = site.client.post("/subscribe", data=form, files=files)
    assert response.status_code == 400, response.text[:300]
    assert field_error(response.text, name) == NOT_A_FILE, all_errors(response.text)
    nothing_stored(site)


def test_a_manage_field_sent_as_a_file_gets_its_error(site: Site) -> None:
    tokens = confirmed(site)
    form = {**manage_form(), CSRF_FIELD: site.csrf()}
    files = {"send_hour": ("hour.txt", form.pop("send_hour").encode(), "text/plain")}
    response = site.client.post(f"/manage/{tokens['manage']}", data=form, files=files)
    assert response.status_code == 400
    assert field_error(response.text, "send_hour") == NOT_A_FILE
    sub = site.subscriber(ADA)
    assert sub is not None and sub.send_hour == 8


@pytest.mark.parametrize("path", ["/preview", "/resend", "/subscribe"])
def test_every_form_field_as_a_file_never_fails(site: Site, path: str) -> None:
    form = site.signup_form()
    files = {
        name: (f"{name}.bin", value.encode() + b"\xff", "application/octet-stream") for name, value in form.items()
    }
    response = site.client.post(path, files=files)
    assert response.status_code == 403  # even the CSRF token came as a file: refused before anything
    form_files = {
        name: (f"{name}.bin", value.encode(), "text/plain") for name, value in form.items() if name != CSRF_FIELD
    }
    response = site.client.post(path, data={CSRF_FIELD: form[CSRF_FIELD]}, files=form_files)
    assert response.status_code in (200, 400), response.text[:300]
    nothing_stored(site)


@pytest.mark.parametrize("content", [b'{"email": "ada@example.org", "topics": [', b"\xff\xfe{}", b"not json"])
def test_a_body_that_is_no_json_is_422_naming_the_body(site: Site, content: bytes) -> None:
    response = site.client.post("/api/subscribe", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["body"]
    nothing_stored(site)
