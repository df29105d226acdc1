"""Workers grouped by host for `batchrun status` (store/hosts.py)."""
from __future__ import annotations

import pytest

from batchrun.store.hosts import by_host

pytestmark = pytest.mark.timeout(10)


def test_an_expired_worker_is_shown_under_the_host_its_id_names():
    workers = [
        {"id": "web-1.example-4242-a1b2c3-w0-beef", "alive": False, "in_flight": 2, "heartbeat": None},
        {"id": "other-1-ffffff-w1-0000", "alive": True, "in_flight": 1,
         "heartbeat": {"host": "db-2", "job": "j1"}},
        {"id": "garbage", "alive": False, "in_flight": 0, "heartbeat": None},
    ]
    hosts = by_host(workers)
    assert list(hosts) == ["?", "db-2", "web-1.example"]
    assert hosts["web-1.example"] == {"workers": [workers[0]["id"]], "alive": 0, "busy": 0, "in_flight": 2}
    assert hosts["db-2"]["busy"] == 1 and hosts["db-2"]["alive"] == 1
