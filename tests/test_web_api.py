"""The JSON API under /api/: the same actions as the pages, with the same answers for every address
and the same validation.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from digest.models import NoticeKind
from digest.web.api import accepted
from tests.conftest import NOW
from tests.webclient import (  # noqa: F401  (clock, site, papers, trending_papers: fixtures)
    ACTIVE,
    ADA,
    PAUSED,
    PENDING,
    UNSUBSCRIBED,
    Site,
    bad_confirm_token,
    clock,
    confirmed,
    every_state,
    four_addresses,
    json_prefs,
    nothing_stored,
    papers,
    site,
    status_of,
    tamper,
    trending_papers,
)


def test_api_subscribe_answers_the_same_for_every_state(site: Site) -> None:
    addresses = four_addresses(site)
    answers = {}
    for state, address in addresses.items():
        response = site.client.post("/api/subscribe", json=json_prefs(email=address.upper(), topics=["diffusion"]))
        answers[state] = (response.status_code, response.json())
    assert answers["new"] == (202, accepted(site.settings, site.clock()).model_dump(mode="json"))
    assert answers["pending"] == answers["active"] == answers["unsubscribed"] == answers["new"]
    kinds = {state: [n.kind for n in site.notices(address)] for state, address in addresses.items()}
    assert kinds == {
        "new": [NoticeKind.CONFIRM],
        "pending": [NoticeKind.CONFIRM],
        "active": [NoticeKind.ALREADY],
        "unsubscribed": [NoticeKind.CONFIRM],
    }
    new = site.subscriber(addresses["new"])
    assert new is not None and (new.status, new.topics) == (PENDING, ["diffusion"])


def test_api_answers_say_when_a_new_link_can_be_sent_the_same_for_every_state(site: Site) -> None:
    """Issue 11 #11: no more "on its way" when nothing was sent; one truthful answer for everyone."""
    site.settings.signup_rate_limit = 100  # 13 requests from this one client
    answers = set()
    for address in every_state(site).values():
        for path, body in (("/api/subscribe", json_prefs(email=address)), ("/api/resend", {"email": address})):
            response = site.client.post(path, json=body)
            answers.add((response.status_code, tuple(sorted(response.json().items()))))
    [(status, answer)] = answers
    assert status == 202
    assert dict(answer) == {
        "status": "accepted",
        "message": "If this address can receive our emails, a message with a link is on its way to it, or one "
        "was sent in the last 24 hours. If you don't see it, check your spam folder; a new link can be sent "
        "after 2026-12-01 09:00 UTC.",
        "new_link_after": "2026-12-01T09:00:00Z",
    }


def test_api_subscribe_stores_the_preferences(site: Site) -> None:
    body = json_prefs(
        email="Ada@Example.org", topics=["Schrödinger bridge", "数学"], frequency="weekdays", send_hour=6,
        timezone="Asia/Tokyo", min_upvotes=2, max_papers=5,
    )  # fmt: skip
    response = site.client.post("/api/subscribe", json=body)
    assert response.status_code == 202
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.topics == ["Schrödinger bridge", "数学"]
    assert (sub.frequency.value, sub.send_hour, sub.timezone, sub.min_upvotes, sub.max_papers) == (
        "weekdays", 6, "Asia/Tokyo", 2, 5,
    )  # fmt: skip
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM]


BAD_API_SIGNUPS = [
    ({"email": "nope"}, "email", "Enter a valid email address"),
    ({"email": ""}, "email", "Enter a valid email address"),
    ({"email": "ada@example.org\r\nBcc: eve@example.org"}, "email", "line breaks"),
    ({"topics": ["agents AND"]}, "topics", "column 8: AND needs a term after it"),
    ({"topics": ["diffusion", '"long context']}, "topics", "line 2, column 1: this quote is never closed"),
    ({"topics": ["-survey"]}, "topics", "column 1"),
    ({"trending": 0}, "trending", "greater than or equal to 1"),
    ({"trending": 51}, "trending", "less than or equal to 50"),
    ({"topics": [], "trending": 51}, "trending", "less than or equal to 50"),
    ({"trending": "ten"}, "trending", "valid integer"),
    ({"topics": ["x " * 50_000]}, "topics", "too much text"),
    ({"timezone": "UTC\r\nX-Injected: 1"}, "timezone", ""),
    ({"timezone": "Mars/Base"}, "timezone", "time zone"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_API_SIGNUPS)
def test_api_subscribe_with_bad_input_is_422_with_errors(
    site: Site, change: dict[str, Any], field: str, message: str
) -> None:
    response = site.client.post("/api/subscribe", json={**json_prefs(email=ADA), **change})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert message in errors[field], errors
    nothing_stored(site)


@pytest.mark.parametrize(
    "body",
    [{}, {"topics": []}, {"email": ADA, "topics": "diffusion"}, json_prefs(email=ADA, trending=0),
     json_prefs(email=ADA, send_hour=24), json_prefs(email=ADA, frequency="hourly"),
     json_prefs(email=ADA, max_papers=0), json_prefs(email="a" * 300 + "@example.org")],
)  # fmt: skip
def test_api_subscribe_with_a_malformed_body_is_422(site: Site, body: dict[str, Any]) -> None:
    response = site.client.post("/api/subscribe", json=body)
    assert response.status_code == 422
    nothing_stored(site)


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ({"email": ADA}, ([], 10)),  # no topics: the trending papers, 10 of them
        ({"email": ADA, "topics": []}, ([], 10)),
        ({"email": ADA, "topics": ["", " "]}, ([], 10)),
        ({"email": ADA, "topics": [], "trending": 5}, ([], 5)),
        ({"email": ADA, "topics": [], "trending": None}, ([], 10)),
        (json_prefs(email=ADA), (["diffusion"], None)),  # topics only
        (json_prefs(email=ADA, trending=None), (["diffusion"], None)),
        (json_prefs(email=ADA, trending=50), (["diffusion"], 50)),  # both
    ],
)
def test_api_subscribe_with_trending(site: Site, body: dict[str, Any], stored: tuple[list[str], int | None]) -> None:
    response = site.client.post("/api/subscribe", json=body)
    assert response.status_code == 202, response.json()
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == stored
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM]


def test_api_resend(site: Site) -> None:
    site.clock.advance(hours=-30)
    assert site.client.post("/api/subscribe", json=json_prefs(email=ADA)).status_code == 202
    site.clock.advance(hours=30)
    answers = [site.client.post("/api/resend", json={"email": e}) for e in (ADA, "nobody@example.org", "bad")]
    assert {(r.status_code, r.json()["message"]) for r in answers} == {(202, accepted(site.settings, NOW).message)}
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM, NoticeKind.CONFIRM]
    assert len(site.notices()) == 2
    assert site.client.post("/api/resend", json={}).status_code == 422


def test_api_preview_returns_this_weeks_matches_with_title_segments(site: Site, papers: None) -> None:
    response = site.client.post("/api/preview", json={"topics": ["diffusion"]})
    assert response.status_code == 200
    body = response.json()
    assert body["more"] == 0
    [found] = body["papers"]
    assert "".join(s["text"] for s in found["title"]) == "Diffusion models for text"
    assert {"text": "Diffusion", "hit": True} in found["title"]
    assert found["url"] == "https://arxiv.org/abs/2611.00001"
    assert found["topics"] == ["diffusion"]
    titles = [
        "".join(s["text"] for s in p["title"])
        for p in site.client.post("/api/preview", json={"topics": ["diffusion", "graph"]}).json()["papers"]
    ]
    assert sorted(titles) == ["A survey of graph networks", "Diffusion models for text"]
    quantum = site.client.post("/api/preview", json={"topics": ["quantum"]}).json()
    assert quantum == {"trending": None, "papers": [], "more": 0}
    nothing_stored(site)


def _titles(papers: list[dict[str, Any]]) -> list[str]:
    return ["".join(s["text"] for s in p["title"]) for p in papers]


NO_TOPICS = [{}, {"topics": []}, {"topics": [" "]}, {"trending": 3}, {"topics": [], "trending": 3}]


@pytest.mark.parametrize("body", NO_TOPICS)
def test_api_preview_without_topics_is_the_trending_papers(
    site: Site, trending_papers: None, body: dict[str, Any]
) -> None:
    response = site.client.post("/api/preview", json=body)
    assert response.status_code == 200, response.json()
    shown = response.json()
    count = body.get("trending", 10)
    expected = ["Diffusion transformers at scale", "Agents that use tools", "Diffusion for proteins",
                "A survey of graphs", "Small diffusion tricks"][:count]  # fmt: skip
    assert _titles(shown["trending"]) == expected
    assert [p["rank"] for p in shown["trending"]] == list(range(1, len(expected) + 1))
    assert [p["upvotes"] for p in shown["trending"]] == [120, 80, 45, 10, 4][:count]
    assert shown["trending"][0]["why"] == "#1 · 120 upvotes"
    assert (shown["papers"], shown["more"]) == ([], 0)


def test_api_preview_honours_every_setting(site: Site, trending_papers: None) -> None:
    minimum = site.client.post("/api/preview", json={"topics": ["diffusion"], "min_upvotes": 40}).json()
    assert minimum["trending"] is None
    assert _titles(minimum["papers"]) == ["Diffusion transformers at scale", "Diffusion for proteins"]
    capped = site.client.post("/api/preview", json={"topics": ["diffusion"], "max_papers": 1}).json()
    assert (_titles(capped["papers"]), capped["more"]) == (["Diffusion transformers at scale"], 3)
    both = site.client.post("/api/preview", json={"topics": ["diffusion"], "trending": 1, "max_papers": 2}).json()
    assert _titles(both["trending"]) == ["Diffusion transformers at scale"]
    assert _titles(both["papers"]) == ["Diffusion for proteins", "Small diffusion tricks"]  # never a paper twice
    assert both["more"] == 1
    assert both["papers"][0]["why"] == "Matched: diffusion" and both["papers"][0]["rank"] is None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [({"topics": ["agents AND"]}, "topics", "column 8"), ({"topics": ["ok", "(x"]}, "topics", "line 2, column 1"),
     ({"topics": "diffusion"}, "topics", ""), ({"trending": 0}, "trending", "greater than or equal to 1"),
     ({"trending": 51}, "trending", "less than or equal to 50"), ({"min_upvotes": -1}, "min_upvotes", ""),
     ({"min_upvotes": 100_001}, "min_upvotes", "from 0 to 100000"), ({"max_papers": 0}, "max_papers", "")],
)  # fmt: skip
def test_api_preview_with_bad_settings_is_422(site: Site, body: dict[str, Any], field: str, message: str) -> None:
    response = site.client.post("/api/preview", json=body)
    assert response.status_code == 422
    assert message in response.json()["errors"][field]


def test_api_confirm(site: Site) -> None:
    assert site.client.post("/api/subscribe", json=json_prefs(email=ADA)).status_code == 202
    token = site.confirm_token(ADA)
    tokens = site.tokens(ADA)
    for bad in (tamper(token), tokens["manage"], tokens["unsubscribe"], "nope"):
        response = site.client.post(f"/api/confirm/{bad}")
        assert response.status_code == 400
        assert response.json() == {"detail": "This link is not valid."}
    assert status_of(site, ADA) is PENDING
    assert site.client.post(f"/api/confirm/{token}").json() == {"status": "active", "message": ""}
    assert site.client.post(f"/api/confirm/{token}").json() == {"status": "active", "message": ""}
    assert status_of(site, ADA) is ACTIVE


@pytest.mark.parametrize("kind", ["expired", "replayed-after-new-signup", "after-unsubscribing"])
def test_api_confirm_refuses_dead_links(site: Site, kind: str) -> None:
    token = bad_confirm_token(site, kind)
    before = status_of(site, ADA)
    assert site.client.post(f"/api/confirm/{token}").status_code == 400
    assert status_of(site, ADA) is before


def test_api_manage_round_trip(site: Site) -> None:
    tokens = confirmed(site, ADA, "diffusion")
    url = f"/api/manage/{tokens['manage']}"
    got = site.client.get(url)
    assert got.status_code == 200
    assert got.json() == {
        "email": ADA, "status": "active", "topics": ["diffusion"], "frequency": "daily", "send_hour": 8,
        "timezone": "UTC", "weekly_day": 0, "min_upvotes": None, "max_papers": 25, "trending": None,
    }  # fmt: skip
    new = json_prefs(topics=['"long context"', "cat:cs.CL"], frequency="weekly", weekly_day=3, send_hour=21,
                     timezone="America/New_York", min_upvotes=10, max_papers=50, trending=5)  # fmt: skip
    put = site.client.put(url, json=new)
    assert put.status_code == 200
    assert put.json() == {**new, "email": ADA, "status": "active"}
    assert site.client.get(url).json() == put.json()
    sub = site.subscriber(ADA)
    assert sub is not None
    assert (sub.topics, sub.timezone, sub.weekly_day) == (['"long context"', "cat:cs.CL"], "America/New_York", 3)
    assert sub.trending == 5
    off = site.client.put(url, json=json_prefs(topics=["agents"], trending=None)).json()
    assert (off["topics"], off["trending"]) == (["agents"], None)
    emptied = site.client.put(url, json=json_prefs(topics=[])).json()  # every topic removed: trending
    assert (emptied["topics"], emptied["trending"]) == ([], 10)
    assert site.client.get(url).json() == emptied


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [({"topics": ["agents AND"]}, "topics", "column 8"), ({"topics": ["a", "b AND"]}, "topics", "line 2, column 3"),
     ({"timezone": "Nowhere"}, "timezone", "time zone"), ({"timezone": "UTC\n"}, "timezone", "line breaks"),
     ({"trending": 0}, "trending", "greater than or equal to 1"), ({"topics": [], "trending": 99}, "trending", "50")],
)  # fmt: skip
def test_api_manage_put_with_bad_values_is_422_and_changes_nothing(
    site: Site, change: dict[str, Any], field: str, message: str
) -> None:
    tokens = confirmed(site, ADA, "diffusion")
    before = site.subscriber(ADA)
    response = site.client.put(f"/api/manage/{tokens['manage']}", json={**json_prefs(), **change})
    assert response.status_code == 422
    assert message in response.json()["errors"][field]
    after = site.subscriber(ADA)
    assert after is not None and before is not None
    assert after.model_dump() == before.model_dump()


def test_api_manage_with_bad_tokens_is_400(site: Site) -> None:
    tokens = confirmed(site)
    for bad in (tamper(tokens["manage"]), tokens["unsubscribe"], "x"):
        assert site.client.get(f"/api/manage/{bad}").status_code == 400
        assert site.client.put(f"/api/manage/{bad}", json=json_prefs(topics=["x"])).status_code == 400
        assert site.client.post(f"/api/manage/{bad}/pause").status_code == 400
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.topics) == (ACTIVE, ["diffusion"])


def test_api_pause_and_resume(site: Site) -> None:
    tokens = confirmed(site)
    url = f"/api/manage/{tokens['manage']}"
    paused = site.client.post(f"{url}/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert status_of(site, ADA) is PAUSED
    site.clock.advance(days=1)
    resumed = site.client.post(f"{url}/resume")
    assert resumed.json()["status"] == "active"
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.confirmed_at) == (ACTIVE, NOW + timedelta(days=1))
    assert site.client.post(f"{url}/explode").status_code == 404
    assert status_of(site, ADA) is ACTIVE


def test_api_pause_of_a_pending_reader_is_refused(site: Site) -> None:
    assert site.signup(ADA).status_code == 200
    tokens = site.tokens(ADA)
    assert site.client.post(f"/api/manage/{tokens['manage']}/pause").status_code == 409
    assert status_of(site, ADA) is PENDING


def test_api_unsubscribe(site: Site) -> None:
    tokens = confirmed(site)
    for bad in (tamper(tokens["unsubscribe"]), tokens["manage"], "x"):
        assert site.client.post(f"/api/unsubscribe/{bad}").status_code == 400
    assert status_of(site, ADA) is ACTIVE
    first = site.client.post(f"/api/unsubscribe/{tokens['unsubscribe']}")
    assert (first.status_code, first.json()) == (200, {"status": "unsubscribed", "message": ""})
    second = site.client.post(f"/api/unsubscribe/{tokens['unsubscribe']}")
    assert (second.status_code, second.json()["status"]) == (200, "unsubscribed")
    assert status_of(site, ADA) is UNSUBSCRIBED
    put = site.client.put(f"/api/manage/{tokens['manage']}", json=json_prefs(topics=["back"]))
    assert put.status_code == 409
    assert site.client.post(f"/api/manage/{tokens['manage']}/resume").status_code == 409
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.topics) == (UNSUBSCRIBED, ["diffusion"])
