"""Schemathesis against the app's own OpenAPI schema (/api/openapi.json), in-process over ASGI (no
network): every operation gets generated paths and bodies, valid and invalid. No answer may be a
500, and every error must be a clear 4xx with a JSON body that says what is wrong. A small, fixed
(derandomized) set of examples keeps it inside the normal suite; what it found has its own
regression tests (tests/test_web_input.py).

Schemathesis's pytest plugin (`from_fixture`) does not run on this pytest, so each operation's
strategy is driven by Hypothesis here, against the per-test app of tests/webclient.py (SQLite, or
PostgreSQL with DIGEST_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from digest.compose import feedback_url
from digest.db import open_session
from tests.factories import add_papers, paper
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    Site,
    clock,
    confirmed,
    pending_with_token,
    site,
)

EXAMPLES = 100
OPERATIONS = [
    ("POST", "/api/subscribe"),
    ("POST", "/api/resend"),
    ("POST", "/api/preview"),
    ("POST", "/api/confirm/{token}"),
    ("GET", "/api/manage/{token}"),
    ("PUT", "/api/manage/{token}"),
    ("POST", "/api/manage/{token}/{action}"),
    ("POST", "/api/unsubscribe/{token}"),
    ("GET", "/api/feedback/{token}"),
    ("POST", "/api/feedback/{token}"),
    ("DELETE", "/api/feedback/{token}"),
]


def clear_client_error(_ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """An error is a 4xx with a JSON object that says what is wrong: `errors` by field, or `detail`."""
    if response.status_code < 400:
        return None
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code} answered as {content_type}"
    body = response.json()
    assert isinstance(body, dict) and (body.get("errors") or body.get("detail") or body.get("error")), body
    return None


CHECKS = [not_a_server_error, clear_client_error, response_schema_conformance]


def _feedback_token(site: Site, email: str) -> str:
    """A working "more like this" token of this reader, on a paper the database holds."""
    with open_session(site.engine) as session:
        add_papers(session, paper("2611.99999", "A paper to vote on", first_seen=site.clock()))
    sub = site.subscriber(email)
    assert sub is not None
    url = feedback_url(site.settings, sub, "2611.99999", +1, None, site.clock())
    assert url is not None
    return url.rsplit("/", 1)[1]


def test_the_schema_has_exactly_these_operations(site: Site) -> None:
    schema: Any = schemathesis.openapi.from_asgi("/api/openapi.json", site.app)
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_api_answer_is_a_server_error_and_every_error_is_a_clear_4xx(site: Site, method: str, path: str) -> None:
    site.settings.signup_rate_limit = 100_000  # the examples must reach the handlers, not the limiter
    schema: Any = schemathesis.openapi.from_asgi("/api/openapi.json", site.app)
    operation = schema[path][method]
    # Working tokens as well as generated ones, so the examples also get past the token check.
    working = {
        **confirmed(site, "grace@example.org"),
        "confirm": pending_with_token(site, "pending@example.org"),
        "feedback": _feedback_token(site, "grace@example.org"),
    }
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)
        if case.path_parameters and "token" in case.path_parameters:  # the same request with a working token
            case.path_parameters = {**case.path_parameters, "token": working[path.split("/")[2]]}
            case.call_and_validate(checks=CHECKS)

    run()
