"""A worker that cannot renew its heartbeat stops itself before others reclaim its job."""
from __future__ import annotations

import time

import pytest

from batchrun.broker import Broker
from batchrun.connection import client_for
from batchrun.heartbeat import Heartbeat

pytestmark = pytest.mark.timeout(30)


def test_heartbeat_fences_its_worker_when_redis_stays_unreachable(tmp_path):
    broker = Broker(client_for(f"unix://{tmp_path}/nothing.sock", socket_timeout_s=0.1, retries=0), "ns")
    fenced = []
    heartbeat = Heartbeat(broker, "w", interval_s=0.05, ttl_s=0.5, on_fenced=lambda: fenced.append(time.monotonic()))
    started = time.monotonic()
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while not fenced:
            assert time.monotonic() < deadline, "the heartbeat never gave up"
            time.sleep(0.01)
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=5)
    assert 0.4 <= fenced[0] - started < 2.0


def test_heartbeat_fences_its_worker_when_its_key_has_expired(redis_url, namespace):
    broker = Broker(client_for(redis_url), namespace)
    broker.register_worker("w", 10, {"pid": 1})
    broker.client.delete(broker.keys.worker("w"))
    fenced = []
    heartbeat = Heartbeat(broker, "w", interval_s=1, ttl_s=10, on_fenced=lambda: fenced.append(True))
    heartbeat.beat_once()
    assert fenced == [True]
    assert not broker.client.exists(broker.keys.worker("w"))
