"""The prompt to send queued notices when there is a broker: the web app puts a `digest.send_notices`
message on the workers' queue in the real Redis, sent by name (digest/web imports nothing of workers)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.web.app import create_app
from digest.web.dispatch import SEND_NOTICES
from digest.web.security import MemoryRateLimiter
from tests.conftest import port_open, require
from tests.webclient import ADA, BASE, Clock, json_prefs
from workers import tasks  # noqa: F401  (registers the workers' tasks on their app)
from workers.celery_app import app as workers_app

# Databases 13 and 15 are flushed by the fault and Celery tests, 12 by the operations tests.
REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own, emptied afterwards."""
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    name = f"web-kick-{uuid.uuid4().hex[:12]}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


def _messages(queue: str) -> list[dict[str, Any]]:
    raw = redis.Redis.from_url(REDIS_URL).lrange(queue, 0, -1)
    return [json.loads(item) for item in raw]


def test_a_signup_with_a_broker_puts_send_notices_on_the_workers_queue(
    settings: Settings, engine: Engine, queue: str
) -> None:
    with_broker = settings.model_copy(update={"broker_url": REDIS_URL, "celery_queue": queue})
    app = create_app(with_broker, engine=engine, clock=Clock(), limiter=MemoryRateLimiter(), send_in_process=False)
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/api/subscribe", json=json_prefs(email=ADA)).status_code == 202

    [message] = _messages(queue)
    assert message["headers"]["task"] == SEND_NOTICES == "digest.send_notices"
    assert message["content-type"] == "application/json"
    assert message["properties"]["delivery_info"]["routing_key"] == queue
    args, kwargs, _options = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {})
    # The name is one the workers answer to.
    assert SEND_NOTICES in workers_app.tasks
