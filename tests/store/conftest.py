"""What the broker tests share: a Broker on the session's server, in a fresh namespace."""
from __future__ import annotations

import pytest
import redis

from batchrun.store.broker import Broker

RESULT_TTL_S = 60


@pytest.fixture
def broker(redis_url: str, namespace: str):
    client = redis.Redis.from_url(redis_url)
    yield Broker(client, namespace, result_ttl_s=RESULT_TTL_S)
    client.close()
