"""Schedules, pause, unique jobs and concurrency limits, one Lua script at a time, against the real server."""
from __future__ import annotations

import threading

import pytest

from batchrun.ids import new_job_id
from batchrun.store.broker import Broker, Failure

QUEUES = ["high", "default", "low"]


def _fire(broker: Broker, due: float, **kwargs) -> int:
    return broker.fire("tick#0", due, new_job_id(), "tick", b"{}", "default", **kwargs)


def _limited(broker: Broker, limit: int = 1, job: str = "lim") -> str:
    job_id, created = broker.enqueue_controlled(new_job_id(), job, b"{}", "default", limit=limit)
    assert created
    return job_id


def _worker(broker: Broker, name: str) -> str:
    broker.register_worker(name, 10.0, {"host": "test", "pid": 1})
    return name


def _ids(broker: Broker, worker: str, limit: int = 10) -> list[str]:
    return [f.id for f in broker.fetch(worker, QUEUES, limit)]


# --- schedules ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_due_time_fires_once_however_many_supervisors_try(broker):
    outcomes: list[int] = []
    threads = [threading.Thread(target=lambda: outcomes.append(_fire(broker, 1000.0))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == [0] * 7 + [1]
    assert broker.client.llen(broker.keys.queue("default")) == 1
    assert _fire(broker, 999.0) == 0, "an earlier due time than the last fire is never fired"
    assert _fire(broker, 1001.0) == 1
    fired = broker.client.hgetall(broker.keys.schedules)
    assert float(fired[b"tick#0"]) == 1001.0
    assert b"tick#0:fired_at" in fired and b"tick#0:job" in fired


@pytest.mark.timeout(30)
def test_a_fire_of_a_unique_job_whose_twin_has_not_ended_queues_nothing(broker):
    twin, created = broker.enqueue_controlled(new_job_id(), "tick", b"{}", "default", unique_key="tick:k")
    assert created
    assert _fire(broker, 5.0, unique_key="tick:k") == 2
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [twin.encode()]
    assert broker.client.hget(broker.keys.schedules, "tick#0:job") == twin.encode()


# --- pause ----------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_fetch_skips_paused_queues_and_resume_wakes_workers(broker):
    worker = _worker(broker, "w1")
    held = new_job_id()
    broker.enqueue(held, "noop", b"{}", "high")
    other = new_job_id()
    broker.enqueue(other, "noop", b"{}", "low")
    assert broker.set_paused(["high"], True) == 1
    assert broker.set_paused(["high"], True) == 0
    assert _ids(broker, worker) == [other]
    broker.ack(worker, [(other.encode(), b"null")])
    assert _ids(broker, worker) == []
    assert broker.client.llen(broker.keys.wake) == 0
    assert broker.set_paused(["high"], False) == 1
    assert broker.client.llen(broker.keys.wake) == 1
    assert _ids(broker, worker) == [held]


# --- unique ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_racing_unique_enqueues_make_one_job_and_an_ended_one_frees_the_key(broker):
    results: list[tuple[str, bool]] = []

    def submit() -> None:
        results.append(broker.enqueue_controlled(new_job_id(), "u", b'{"a":1}', "default", unique_key="u:1"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    worker = _worker(broker, "w1")
    (job_id,) = _ids(broker, worker)
    assert broker.enqueue_controlled(new_job_id(), "u", b"{}", "default", unique_key="u:1") == (job_id, False)
    broker.fail(worker, job_id, Failure("final", "boom"))
    again, created = broker.enqueue_controlled(new_job_id(), "u", b"{}", "default", unique_key="u:1")
    assert created and again != job_id


def test_a_dead_unique_job_is_not_requeued_beside_its_live_twin(broker):
    first, _ = broker.enqueue_controlled(new_job_id(), "u", b"{}", "default", unique_key="u:2")
    worker = _worker(broker, "w1")
    assert _ids(broker, worker) == [first]
    broker.fail(worker, first, Failure("final", "boom"))
    twin, created = broker.enqueue_controlled(new_job_id(), "u", b"{}", "default", unique_key="u:2")
    assert created
    assert broker.requeue([first]) == [-2], "the twin is queued: requeueing would run two equal jobs"
    assert broker.client.lpos(broker.keys.dead, first) is not None, "it stays dead-lettered"
    broker.cancel(twin)
    assert broker.requeue([first]) == [1]
    assert broker.enqueue_controlled(new_job_id(), "u", b"{}", "default", unique_key="u:2") == (first, False)


# --- concurrency ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_limited_jobs_over_the_limit_are_parked_and_come_back_in_order(broker):
    ids = [_limited(broker, limit=2) for _ in range(5)]
    free = new_job_id()
    broker.enqueue(free, "noop", b"{}", "default")
    w1, w2 = _worker(broker, "w1"), _worker(broker, "w2")
    assert _ids(broker, w1) == [ids[0], ids[1], free]
    assert broker.client.lrange(broker.keys.waiting("lim"), 0, -1) == [i.encode() for i in ids[2:]]
    assert _ids(broker, w2) == []
    broker.ack(w1, [(ids[0].encode(), b"null"), (free.encode(), b"null")])
    assert _ids(broker, w2) == [ids[2]]
    broker.fail(w1, ids[1], Failure("retry", "boom", retries=3, retry_at=1e12))
    assert broker.cancel(ids[4]) == "cancelled"
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [ids[3].encode()]
    assert broker.client.llen(broker.keys.waiting("lim")) == 0
    assert broker.reclaim(w2, count_crash=True, crash_limit=3, reason="killed", only_if_expired=False,
                          fallback_queue="high") == (1, 0)
    assert broker.client.scard(broker.keys.active("lim")) == 0
    assert _ids(broker, w1, 1) == [ids[2]]
    assert _ids(broker, _worker(broker, "w3"), 1) == [ids[3]]


@pytest.mark.timeout(30)
def test_a_released_limited_job_gives_its_slot_back(broker):
    first, second = _limited(broker), _limited(broker)
    worker = _worker(broker, "w1")
    taken = broker.fetch(worker, QUEUES, 5)
    assert [f.id for f in taken] == [first]
    assert broker.release(worker, [taken[0].raw_id]) == 1
    assert broker.client.scard(broker.keys.active("lim")) == 0
    assert broker.client.lrange(broker.keys.queue("default"), 0, -1) == [first.encode(), second.encode()]
    assert _ids(broker, _worker(broker, "w2"), 5) == [first]
