"""The Lua state changes, driven directly against the real server."""
from __future__ import annotations

import time

import pytest

from batchrun.ids import new_job_id
from batchrun.store.broker import FAIL_DEAD, Broker, Failure, WorkerFenced

pytestmark = pytest.mark.timeout(30)
QUEUES = ["high", "default", "low"]


def _enqueue(broker: Broker, queue: str = "default", job: str = "noop") -> str:
    job_id = new_job_id()
    assert broker.enqueue(job_id, job, b"{}", queue)
    return job_id


def _fetch(broker: Broker, worker: str):
    jobs = broker.fetch(worker, QUEUES)
    assert len(jobs) <= 1
    return jobs[0] if jobs else None


def _ack(broker: Broker, worker: str, job_id: str, result: bytes = b"null") -> bool:
    return broker.ack(worker, [(job_id.encode(), result)]) == 1


def _worker(broker: Broker, name: str = "w1", ttl_s: float = 10.0) -> str:
    broker.register_worker(name, ttl_s, {"host": "test", "pid": 1})
    return name


def test_fetch_takes_jobs_in_priority_order_and_moves_them_to_processing(broker):
    low, default, high = _enqueue(broker, "low"), _enqueue(broker, "default"), _enqueue(broker, "high")
    w = _worker(broker)
    order = []
    for _ in range(3):
        fetched = _fetch(broker, w)
        assert broker.client.lrange(broker.keys.processing(w), 0, -1) == [fetched.id.encode()]
        order.append(fetched.id)
        assert _ack(broker, w, fetched.id, b"1")
    assert order == [high, default, low]
    assert _fetch(broker, w) is None


def test_a_fetch_whose_reply_was_lost_hands_the_same_job_out_again(broker):
    first, second = _enqueue(broker), _enqueue(broker)
    w = _worker(broker)
    assert _fetch(broker, w).id == first
    again = _fetch(broker, w)
    assert again.id == first and again.attempts == 2
    assert broker.client.llen(broker.keys.queue("default")) == 1
    _ack(broker, w, first, b"null")
    assert _fetch(broker, w).id == second


def test_enqueue_pushes_a_wake_token_and_an_empty_sweep_clears_them(broker):
    _enqueue(broker)
    _enqueue(broker)
    assert broker.client.llen(broker.keys.wake) == 2
    w = _worker(broker)
    for _ in range(2):
        _ack(broker, w, _fetch(broker, w).id)
    assert _fetch(broker, w) is None
    assert broker.client.llen(broker.keys.wake) == 0
    started = time.monotonic()
    assert broker.wait_for_work(0.2) is False
    assert time.monotonic() - started >= 0.15
    _enqueue(broker)
    assert broker.wait_for_work(5) is True


def test_ack_records_the_result_with_retention(broker):
    job_id = _enqueue(broker)
    w = _worker(broker)
    _fetch(broker, w)
    assert _ack(broker, w, job_id, b'{"x": 1}')
    record = broker.client.hgetall(broker.keys.job(job_id))
    assert record[b"state"] == b"succeeded" and record[b"result"] == b'{"x": 1}'
    assert 0 < broker.client.ttl(broker.keys.job(job_id)) <= 60
    assert b"job" not in broker.client.hgetall(broker.keys.worker(w))


def test_reclaim_requeues_at_the_front_and_counts_a_crash(broker):
    taken, waiting = _enqueue(broker), _enqueue(broker)
    w = _worker(broker)
    _fetch(broker, w)
    assert broker.reclaim(w, count_crash=True, crash_limit=3, reason="killed", only_if_expired=False, fallback_queue="high") == (1, 0)
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [taken.encode(), waiting.encode()]
    record = broker.client.hgetall(broker.keys.job(taken))
    assert record[b"crashes"] == b"1" and record[b"state"] == b"queued"
    assert not broker.client.exists(broker.keys.processing(w), broker.keys.worker(w))
    assert not broker.client.sismember(broker.keys.workers, w)


def test_reclaim_without_a_crash_leaves_the_count_alone(broker):
    job_id = _enqueue(broker)
    w = _worker(broker)
    _fetch(broker, w)
    broker.reclaim(w, count_crash=False, crash_limit=1, reason="stopped", only_if_expired=False, fallback_queue="high")
    assert broker.client.hget(broker.keys.job(job_id), "crashes") in (None, b"0")


def test_reclaim_dead_letters_a_job_at_the_crash_limit(broker):
    job_id = _enqueue(broker)
    for attempt in range(2):
        w = _worker(broker, f"w{attempt}")
        assert _fetch(broker, w).id == job_id
        broker.reclaim(w, count_crash=True, crash_limit=2, reason=f"crash {attempt}", only_if_expired=False,
                       fallback_queue="high")
    record = broker.client.hgetall(broker.keys.job(job_id))
    assert record[b"state"] == b"dead" and b"died 2 times" in record[b"error"] and b"crash 1" in record[b"error"]
    assert broker.client.lrange(broker.keys.dead, 0, -1) == [job_id.encode()]
    assert broker.client.llen(broker.keys.queue("default")) == 0


def test_reclaim_of_expired_workers_never_touches_a_live_one(broker):
    job_id = _enqueue(broker)
    live = _worker(broker, "live")
    _fetch(broker, live)
    assert broker.expired_workers() == []
    assert broker.reclaim(live, count_crash=True, crash_limit=3, reason="x", only_if_expired=True,
                          fallback_queue="high") is None
    assert broker.client.lrange(broker.keys.processing(live), 0, -1) == [job_id.encode()]


def test_a_worker_whose_heartbeat_expired_is_fenced(broker):
    job_id = _enqueue(broker)
    w = _worker(broker, "slow", ttl_s=0.2)
    _fetch(broker, w)
    deadline = time.monotonic() + 5
    while broker.expired_workers() != [w]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert broker.reclaim(w, count_crash=True, crash_limit=3, reason="expired", only_if_expired=True,
                          fallback_queue="high") == (1, 0)
    assert broker.beat([w], 10) == [False], "an expired heartbeat is never recreated"
    with pytest.raises(WorkerFenced):
        _fetch(broker, w)
    assert _ack(broker, w, job_id, b"null") is False, "a reclaimed job's late outcome is dropped"
    assert broker.client.hget(broker.keys.job(job_id), "state") == b"queued"


def test_one_beat_renews_several_heartbeats_and_names_the_expired(broker):
    live, gone = _worker(broker, "live", ttl_s=0.3), _worker(broker, "gone", ttl_s=10)
    broker.client.delete(broker.keys.worker(gone))
    assert broker.beat([live, gone], 10) == [True, False]
    assert broker.client.pttl(broker.keys.worker(live)) > 5_000
    assert not broker.client.exists(broker.keys.worker(gone))
    assert broker.beat([], 10) == []


def test_fail_moves_the_job_to_the_dead_letter_list(broker):
    job_id = _enqueue(broker)
    w = _worker(broker)
    _fetch(broker, w)
    assert broker.fail(w, job_id, Failure("final", "ValueError: x", "tb")) == FAIL_DEAD
    record = broker.client.hgetall(broker.keys.job(job_id))
    assert record[b"state"] == b"failed" and record[b"traceback"] == b"tb"
    assert broker.client.lrange(broker.keys.dead, 0, -1) == [job_id.encode()]
    assert broker.client.llen(broker.keys.processing(w)) == 0


def test_enqueue_refuses_an_existing_id(broker):
    job_id = _enqueue(broker)
    assert broker.enqueue(job_id, "noop", b"{}", "default") is False
    assert broker.client.llen(broker.keys.queue("default")) == 1


def test_fetch_and_reclaim_never_raise_on_tampered_records(broker):
    wrong_type = "0" * 24
    broker.client.set(broker.keys.job(wrong_type), "a string, not a hash")
    broker.client.rpush(broker.keys.queue("default"), wrong_type)
    bad_counts = _enqueue(broker)
    broker.client.hset(broker.keys.job(bad_counts), mapping={"attempts": "many", "crashes": "lots"})
    w = _worker(broker)
    first = _fetch(broker, w)
    assert first.id == wrong_type and first.malformed
    broker.client.lrem(broker.keys.processing(w), 0, wrong_type)
    second = _fetch(broker, w)
    assert second.id == bad_counts and second.attempts == 1 and second.crashes == 0
    broker.client.rpush(broker.keys.processing(w), wrong_type)
    assert broker.reclaim(w, count_crash=True, crash_limit=3, reason="x", only_if_expired=False,
                          fallback_queue="high") == (2, 0)
    assert broker.client.lrange(broker.keys.queue("high"), 0, -1) == [wrong_type.encode()]
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [bad_counts.encode()]


def test_enqueue_many_creates_every_job_in_order_and_wakes_workers(broker):
    items = [(new_job_id(), b'{"n": %d}' % i) for i in range(2500)]
    assert broker.enqueue_many("noop", "low", items) == 2500
    assert broker.client.lrange(broker.keys.queue("low"), 0, -1) == [i.encode() for i, _ in items]
    assert broker.client.hget(broker.keys.job(items[-1][0]), "params") == b'{"n": 2499}'
    assert broker.client.llen(broker.keys.wake) > 0
    assert broker.enqueue_many("noop", "low", items[:10]) == 0


def test_fetch_takes_a_batch_across_queues_in_priority_order(broker):
    high = [_enqueue(broker, "high") for _ in range(2)]
    default = [_enqueue(broker, "default") for _ in range(3)]
    w = _worker(broker)
    batch = broker.fetch(w, QUEUES, limit=4)
    assert [f.id for f in batch] == high + default[:2]
    assert broker.client.llen(broker.keys.processing(w)) == 4
    assert broker.ack(w, [(f.raw_id, b"1") for f in batch]) == 4
    assert broker.client.llen(broker.keys.processing(w)) == 0


def test_release_gives_unstarted_jobs_back_to_the_front_in_order(broker):
    ids = [_enqueue(broker) for _ in range(4)]
    w = _worker(broker)
    batch = broker.fetch(w, QUEUES, limit=3)
    assert broker.release(w, [f.raw_id for f in batch[1:]]) == 2
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [i.encode() for i in ids[1:]]
    assert broker.client.hget(broker.keys.job(ids[1]), "attempts") == b"0"
    assert broker.client.lrange(broker.keys.processing(w), 0, -1) == [ids[0].encode()]
