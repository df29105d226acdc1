"""Batch counters, kept by the scripts that end jobs: one script at a time, against the real server.

A fake worker (register, fetch, ack, fail, reclaim) drives each transition;
the batch's record must count every job exactly once, on its transition to a
final state, whatever happened to it before.
"""
from __future__ import annotations

import time

import orjson
import pytest
import redis

from batchrun.ids import batch_job_id, new_job_id
from batchrun.store.batches import BatchReader
from batchrun.errors import BrokerError
from batchrun.store.events import EventReader
from batchrun.store.broker import Broker, Failure

pytestmark = pytest.mark.timeout(30)
QUEUES = ["default"]


@pytest.fixture
def client(redis_url: str):
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def broker(client: redis.Redis, namespace: str) -> Broker:
    return Broker(client, namespace, result_ttl_s=60)


@pytest.fixture
def reader(client: redis.Redis, namespace: str) -> BatchReader:
    return BatchReader(client, namespace)


def _batch(broker: Broker, total: int, batch_id: str = "0123456789abcdef", **fields) -> str:
    assert broker.open_batch(batch_id, {"job": "noop", "queue": "default", "total": total, "pending": total,
                                        "ttl_ms": 5000, **fields})
    payloads = [orjson.dumps({"i": i}) for i in range(total)]
    assert broker.enqueue_batch(batch_id, "noop", "default", [(0, payloads)]) == total
    return batch_id


def _take(broker: Broker, worker: str = "w1", limit: int = 1) -> list[str]:
    broker.register_worker(worker, 10.0, {"host": "test", "pid": 1})
    return [f.id for f in broker.fetch(worker, QUEUES, limit)]


def _ack(broker: Broker, job_ids: list[str], worker: str = "w1") -> int:
    return broker.ack(worker, [(j.encode(), b'"ok"') for j in job_ids])


def _reclaim(broker: Broker, worker: str = "w1") -> None:
    broker.reclaim(worker, count_crash=True, crash_limit=3, reason="killed", only_if_expired=False,
                   fallback_queue="default")


def test_jobs_are_named_by_batch_and_index_and_carry_both(broker, client):
    batch_id = _batch(broker, 3)
    assert _take(broker, limit=3) == [batch_job_id(batch_id, i) for i in range(3)]
    record = client.hgetall(broker.keys.job(batch_job_id(batch_id, 2)))
    assert record[b"batch"] == batch_id.encode() and record[b"index"] == b"2"
    assert orjson.loads(record[b"params"]) == {"i": 2}


def test_a_job_reclaimed_after_a_crash_is_counted_once(broker, reader):
    batch_id = _batch(broker, 2)
    first = _take(broker)
    _reclaim(broker)
    assert reader.info(batch_id)["done"] == 0
    again = _take(broker, "w2", limit=2)
    assert first[0] in again
    assert _ack(broker, again, "w2") == 2
    info = reader.info(batch_id)
    assert info["counts"] == {"succeeded": 2, "failed": 0, "dead": 0, "cancelled": 0}
    assert info["done"] == 2 and info["state"] == "ended" and info["ended_at"] is not None


def test_a_late_ack_from_a_presumed_dead_worker_is_not_counted(broker, reader):
    batch_id = _batch(broker, 1)
    job = _take(broker)
    _reclaim(broker)
    assert _ack(broker, job) == 0
    assert reader.info(batch_id)["done"] == 0


def test_retries_count_only_the_final_failure(broker, reader):
    batch_id = _batch(broker, 1)
    job_id = _take(broker)[0]
    retry = Failure("retry", "boom", retries=2, retry_at=time.time() - 1)
    assert broker.fail("w1", job_id, retry) == 2
    assert reader.info(batch_id)["done"] == 0
    broker.promote("default")
    assert _take(broker) == [job_id]
    broker.fail("w1", job_id, Failure("final", "boom again"))
    info = reader.info(batch_id)
    assert info["counts"]["failed"] == 1 and info["state"] == "ended"


def test_dead_lettered_cancelled_and_crash_limited_jobs_are_counted(broker, reader):
    batch_id = _batch(broker, 3)
    first, second = _take(broker, limit=2)
    broker.fail("w1", first, Failure("dead", "cannot run"))
    for attempt in range(1, 4):
        _reclaim(broker, f"w{attempt}")
        if attempt < 3:
            assert _take(broker, f"w{attempt + 1}") == [second]
    assert broker.cancel(batch_job_id(batch_id, 2)) == "cancelled"
    info = reader.info(batch_id)
    assert info["counts"] == {"succeeded": 0, "failed": 0, "dead": 2, "cancelled": 1}
    assert info["state"] == "ended"


def test_a_requeued_job_leaves_its_count_and_reopens_the_batch(broker, reader, client):
    batch_id = _batch(broker, 1)
    job_id = _take(broker)[0]
    broker.fail("w1", job_id, Failure("final", "boom"))
    assert reader.info(batch_id)["state"] == "ended"
    assert client.pttl(broker.keys.batch(batch_id)) > 0
    assert broker.requeue([job_id]) == [1]
    info = reader.info(batch_id)
    assert info["counts"]["failed"] == 0 and info["done"] == 0 and info["state"] == "running"
    assert client.pttl(broker.keys.batch(batch_id)) == -1
    assert _ack(broker, _take(broker)) == 1
    assert reader.info(batch_id)["counts"]["succeeded"] == 1


def test_the_record_expires_with_result_ttl_once_the_batch_ends(broker, client):
    batch_id = _batch(broker, 2)
    _ack(broker, _take(broker))
    assert client.pttl(broker.keys.batch(batch_id)) == -1
    _ack(broker, _take(broker))
    assert 0 < client.pttl(broker.keys.batch(batch_id)) <= 5000


def test_on_complete_is_queued_exactly_once_when_the_batch_ends(broker, reader, client):
    callback_id = new_job_id()
    batch_id = _batch(broker, 2, on_complete="batch-done", on_complete_id=callback_id, on_complete_queue="default",
                      on_complete_params='{"batch_id": "0123456789abcdef"}')
    first, second = _take(broker, limit=2)
    _ack(broker, [first])
    assert not client.exists(broker.keys.job(callback_id))
    broker.fail("w1", second, Failure("final", "boom"))
    assert client.hget(broker.keys.job(callback_id), "job") == b"batch-done"
    assert client.lrange(broker.keys.queue("default"), 0, -1) == [callback_id.encode()]
    broker.requeue([second])
    assert _take(broker, limit=2) == [callback_id, second]
    assert _ack(broker, [second]) == 1
    assert reader.info(batch_id)["state"] == "ended"
    assert client.llen(broker.keys.queue("default")) == 0, "the batch ended again; its callback is not queued again"
    assert client.hget(broker.keys.job(callback_id), "state") == b"running"


def test_a_chunk_sent_twice_queues_nothing_twice(broker, client):
    batch_id = "fedcba9876543210"
    assert broker.open_batch(batch_id, {"job": "noop", "queue": "default", "total": 2, "pending": 2, "ttl_ms": 5000})
    chunk = (0, [b"{}", b"{}"])
    assert broker.enqueue_batch(batch_id, "noop", "default", [chunk]) == 2
    assert broker.enqueue_batch(batch_id, "noop", "default", [chunk]) == 0
    assert client.llen(broker.keys.queue("default")) == 2


def test_a_taken_batch_id_is_refused(broker):
    assert broker.open_batch("0000000000000001", {"job": "noop", "total": 1})
    assert not broker.open_batch("0000000000000001", {"job": "noop", "total": 1})


def test_recent_lists_newest_first_and_drops_expired_records(broker, reader, client):
    for n, batch_id in enumerate(("1000000000000000", "2000000000000000", "3000000000000000")):
        _batch(broker, 1, batch_id)
        time.sleep(0.002 * (n + 1))
    client.delete(broker.keys.batch("2000000000000000"))
    assert [b["id"] for b in reader.recent(10)] == ["3000000000000000", "1000000000000000"]
    assert client.zcard(broker.keys.batches) == 2


def test_a_chunk_emits_one_batch_event_and_the_end_one_more(client, namespace):
    broker = Broker(client, namespace, events_cap=100, result_ttl_s=60)
    batch_id = _batch(broker, 3)
    _ack(broker, _take(broker, limit=3))
    events = [(e["event"], e["id"]) for e in EventReader(client, namespace).history(100)]
    assert [e for e in events if e[0].startswith("batch")] == [("batch_queued", batch_id), ("batch_ended", batch_id)]
    assert [e for e, _ in events].count("succeeded") == 3
    assert client.xlen(broker.keys.events) == 4, "the 3 jobs' successes are one stream entry, as are their starts"


def test_an_ack_for_a_batch_whose_record_is_gone_leaves_no_stray_key(broker, client):
    batch_id = _batch(broker, 2)
    client.delete(broker.keys.batch(batch_id))
    assert _ack(broker, _take(broker)) == 1
    assert not client.exists(broker.keys.batch(batch_id))


def test_a_batch_whose_map_died_half_way_ends_once_closed(broker, reader):
    """A map killed after one chunk of 4 of its 10 inputs: cancelling the batch closes it, the 6 inputs never
    queued stop counting, a late chunk is refused, and the batch ends when its queued jobs have."""
    batch_id = "00000000000000aa"
    assert broker.open_batch(batch_id, {"job": "noop", "queue": "default", "total": 10, "pending": 10,
                                        "ttl_ms": 5000})
    assert broker.enqueue_batch(batch_id, "noop", "default", [(0, [b"{}"] * 4)]) == 4
    taken = _take(broker, limit=2)
    assert _ack(broker, taken) == 2
    assert broker.close_batch(batch_id) == 6
    assert broker.close_batch(batch_id) == 0, "closing twice changes nothing"
    with pytest.raises(BrokerError, match="cancelled while its jobs were being queued"):
        broker.enqueue_batch(batch_id, "noop", "default", [(4, [b"{}"] * 6)])
    info = reader.info(batch_id)
    assert (info["total"], info["state"], info["done"]) == (4, "running", 2)
    assert _ack(broker, _take(broker, limit=2)) == 2
    info = reader.info(batch_id)
    assert info["state"] == "ended" and info["counts"]["succeeded"] == 4
