"""Progress and checkpoint scripts: fenced so a worker presumed dead cannot overwrite a later attempt."""
from __future__ import annotations

import orjson
import pytest

from batchrun.ids import new_job_id
from batchrun.store.broker import Broker, Failure
from batchrun.store.inspection import Inspector

pytestmark = pytest.mark.timeout(30)


def _running(broker: Broker, worker: str) -> tuple[str, int]:
    broker.register_worker(worker, 10.0, {"host": "test", "pid": 1})
    [fetched] = broker.fetch(worker, ["default"])
    return fetched.id, fetched.attempts


def _reclaim(broker: Broker, worker: str) -> None:
    broker.reclaim(worker, count_crash=True, crash_limit=5, reason="presumed dead", only_if_expired=False,
                   fallback_queue="default")


def test_a_stale_attempt_cannot_overwrite_the_checkpoint_of_a_later_one(broker):
    job_id = new_job_id()
    broker.enqueue(job_id, "steps", b"{}", "default")
    _, first = _running(broker, "old")
    assert broker.checkpoint("old", job_id, first, b'{"next": 3}')
    _reclaim(broker, "old")
    _, second = _running(broker, "new")
    assert second == first + 1
    assert broker.checkpoint("new", job_id, second, b'{"next": 5}')
    assert not broker.checkpoint("old", job_id, first, b'{"next": 4}'), "the stale attempt is refused"
    assert not broker.progress("old", job_id, b'{"done": 4}')
    assert broker.job_fields(job_id, "checkpoint") == ['{"next": 5}']


def test_a_checkpoint_needs_the_current_attempt_number_too(broker):
    job_id = new_job_id()
    broker.enqueue(job_id, "steps", b"{}", "default")
    _, attempt = _running(broker, "w")
    assert not broker.checkpoint("w", job_id, attempt - 1, b"1")
    assert broker.checkpoint("w", job_id, attempt, b"2")


def test_progress_is_kept_in_the_record_and_sent_as_an_event(broker, redis_url, namespace):
    job_id = new_job_id()
    broker.enqueue(job_id, "steps", b"{}", "default")
    _running(broker, "w")
    assert broker.progress("w", job_id, orjson.dumps({"done": 4, "total": 10, "message": "m", "at": 1.0}))
    info = Inspector(broker.client, namespace).job(job_id)
    assert info["progress"] == {"done": 4, "total": 10, "message": "m", "at": 1.0}
    events = broker.client.xrange(broker.keys.events)
    assert any(fields[b"event"] == b"progress" and fields[b"id"] == job_id.encode() for _, fields in events)


def test_requeue_keeps_the_checkpoint_and_fresh_drops_it(broker, namespace):
    job_id = new_job_id()
    broker.enqueue(job_id, "steps", b"{}", "default")
    inspector = Inspector(broker.client, namespace)
    for fresh in (False, True):
        _, attempt = _running(broker, "w")
        assert broker.checkpoint("w", job_id, attempt, b'{"next": 7}')
        broker.fail("w", job_id, Failure("final", "boom"))
        assert broker.requeue([job_id], fresh=fresh) == [1]
        info = inspector.job(job_id)
        assert ("checkpoint_at" in info) is not fresh
        assert (info.get("checkpoint_bytes") == len(b'{"next": 7}')) is not fresh
