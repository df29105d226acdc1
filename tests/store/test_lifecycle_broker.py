"""The job state machine, one Lua script at a time, against the real server.

A fake worker (register_worker, fetch, ack, fail, release) drives each
transition, as tests/test_broker.py does. This file covers what that one does
not: retries, schedules and promotion, cancellation, requeue and purge of the
dead-letter list, and the events every transition emits.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis

from batchrun.ids import new_job_id
from batchrun.store.broker import FAIL_DEAD, FAIL_RETRYING, Broker, Failure
from tests.store.conftest import RESULT_TTL_S
from tests.support.project import wait_for

QUEUES = ["high", "default", "low"]
FALLBACK = "high"
EVENT_FIELDS = ["id", "event", "job", "ts", "detail"]


# --- helpers: a fake worker and readers of the namespace's keys ------------


def _enqueue(broker: Broker, queue: str = "default", due: float = 0.0, job: str = "noop") -> str:
    job_id = new_job_id()
    assert broker.enqueue(job_id, job, b"{}", queue, due)
    return job_id


def _start(broker: Broker, worker: str = "w1") -> str:
    """Register `worker` and have it take exactly one job; returns the job's id."""
    broker.register_worker(worker, 10.0, {"host": "test", "pid": 1})
    batch = broker.fetch(worker, QUEUES)
    assert len(batch) == 1
    return batch[0].id


def _retry(error: str = "boom", retries: int = 3, retry_at: float | None = None) -> Failure:
    return Failure("retry", error, "tb", retries=retries, retry_at=time.time() + 30 if retry_at is None else retry_at)


def _dead_lettered(broker: Broker, worker: str = "w1") -> str:
    """A job that ran once and failed for good."""
    job_id = _enqueue(broker)
    assert _start(broker, worker) == job_id
    assert broker.fail(worker, job_id, Failure("final", f"error of {job_id}")) == FAIL_DEAD
    return job_id


def _record(broker: Broker, job_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in broker.client.hgetall(broker.keys.job(job_id)).items()}


def _state(broker: Broker, job_id: str) -> str | None:
    return _record(broker, job_id).get("state")


def _list(broker: Broker, key: str) -> list[str]:
    return [i.decode() for i in broker.client.lrange(key, 0, -1)]


def _queue(broker: Broker, queue: str = "default") -> list[str]:
    return _list(broker, broker.keys.queue(queue))


def _processing(broker: Broker, worker: str = "w1") -> list[str]:
    return _list(broker, broker.keys.processing(worker))


def _dead(broker: Broker) -> list[str]:
    return _list(broker, broker.keys.dead)


def _scheduled(broker: Broker) -> dict[str, float]:
    return {i.decode(): s for i, s in broker.client.zrange(broker.keys.scheduled, 0, -1, withscores=True)}


def _events(broker: Broker, job_id: str | None = None) -> list[dict[str, str]]:
    """Events, oldest first, as ordered dicts of their fields (optionally one job's only): one per job of
    a stream entry, whose id field holds the ids of every job that had that event in one script call."""
    entries = [{k.decode(): v.decode() for k, v in fields.items()}
               for _, fields in broker.client.xrange(broker.keys.events)]
    events = [{**e, "id": one} for e in entries for one in e["id"].split(" ")]
    return [e for e in events if job_id is None or e["id"] == job_id]


def _event_names(broker: Broker, job_id: str) -> list[tuple[str, str]]:
    return [(e["event"], e["detail"]) for e in _events(broker, job_id)]


def _subscribed(broker: Broker) -> redis.client.PubSub:
    """A subscriber to the events channel, returned once the server has confirmed the subscription."""
    pubsub = broker.client.pubsub()
    pubsub.subscribe(broker.keys.events)
    wait_for(lambda: (pubsub.get_message(timeout=0.1) or {}).get("type") == "subscribe", timeout=5,
             what="the subscription to be confirmed")
    return pubsub


def _wait_until_past(moment: float) -> None:
    wait_for(lambda: time.time() > moment, timeout=5, what="the due time to pass")


# --- fail: retry, dead-letter, or nothing -----------------------------------


@pytest.mark.timeout(10)
def test_a_retryable_failure_with_retries_left_schedules_a_retry(broker):
    job_id = _enqueue(broker)
    _start(broker)
    retry_at = time.time() + 30
    assert broker.fail("w1", job_id, Failure("retry", "boom", "tb", retries=2, retry_at=retry_at)) == FAIL_RETRYING
    record = _record(broker, job_id)
    assert record["state"] == "retrying" and record["failures"] == "1"
    assert record["error"] == "boom" and record["traceback"] == "tb"
    assert float(record["due_at"]) == pytest.approx(retry_at, abs=1e-6)
    assert "worker" not in record
    assert _scheduled(broker) == {job_id: pytest.approx(retry_at, abs=1e-6)}
    assert _processing(broker) == [] and _queue(broker) == [] and _dead(broker) == []
    assert b"job" not in broker.client.hgetall(broker.keys.worker("w1"))


@pytest.mark.timeout(10)
def test_failures_beyond_the_retries_dead_letter_the_job(broker):
    job_id = _enqueue(broker)
    _start(broker)
    assert broker.fail("w1", job_id, _retry(retries=1, retry_at=time.time() - 1)) == FAIL_RETRYING
    assert broker.promote(FALLBACK) == (1, None)
    again = broker.fetch("w1", QUEUES)
    assert [(j.id, j.attempts, j.failures) for j in again] == [(job_id, 2, 1)]
    assert broker.fail("w1", job_id, _retry("boom again", retries=1)) == FAIL_DEAD
    record = _record(broker, job_id)
    assert record["state"] == "failed" and record["failures"] == "2" and record["error"] == "boom again"
    assert "finished_at" in record
    assert _dead(broker) == [job_id]
    assert _scheduled(broker) == {} and _processing(broker) == [] and _queue(broker) == []


@pytest.mark.timeout(10)
def test_a_final_failure_dead_letters_at_once_even_with_retries_left(broker):
    job_id = _enqueue(broker)
    _start(broker)
    failure = Failure("final", "PermanentError: bad input", "tb", retries=3, retry_at=time.time() + 30)
    assert broker.fail("w1", job_id, failure) == FAIL_DEAD
    record = _record(broker, job_id)
    assert record["state"] == "failed" and record["failures"] == "1"
    assert record["error"] == "PermanentError: bad input"
    assert _dead(broker) == [job_id] and _scheduled(broker) == {} and _processing(broker) == []


@pytest.mark.timeout(10)
def test_a_job_that_cannot_run_is_dead_without_counting_a_failure(broker):
    job_id = _enqueue(broker)
    _start(broker)
    failure = Failure("dead", "cannot run: unknown job", retries=3, retry_at=time.time() + 30)
    assert broker.fail("w1", job_id, failure) == FAIL_DEAD
    record = _record(broker, job_id)
    assert record["state"] == "dead" and record["error"] == "cannot run: unknown job"
    assert "failures" not in record
    assert _dead(broker) == [job_id] and _scheduled(broker) == {} and _processing(broker) == []


@pytest.mark.timeout(10)
def test_fail_for_a_job_the_worker_no_longer_holds_changes_nothing(broker):
    job_id = _enqueue(broker)
    _start(broker, "owner")
    broker.register_worker("other", 10.0, {"host": "test", "pid": 2})
    before, events_before = _record(broker, job_id), broker.client.xlen(broker.keys.events)
    assert broker.fail("other", job_id, _retry()) == 0
    assert broker.fail("other", job_id, Failure("final", "x")) == 0
    assert _record(broker, job_id) == before
    assert _processing(broker, "owner") == [job_id]
    assert _scheduled(broker) == {} and _dead(broker) == []
    assert broker.client.xlen(broker.keys.events) == events_before

    assert broker.ack("owner", [(job_id.encode(), b"1")]) == 1
    finished = _record(broker, job_id)
    assert broker.fail("owner", job_id, _retry()) == 0, "a late failure after the ack is ignored"
    assert _record(broker, job_id) == finished and finished["state"] == "succeeded"
    assert _scheduled(broker) == {} and _dead(broker) == []


# --- scheduling and promote ------------------------------------------------


@pytest.mark.timeout(10)
def test_enqueue_with_a_future_due_schedules_the_job(broker):
    due = time.time() + 60
    job_id = _enqueue(broker, due=due)
    record = _record(broker, job_id)
    assert record["state"] == "scheduled" and float(record["due_at"]) == pytest.approx(due, abs=1e-6)
    assert _scheduled(broker) == {job_id: pytest.approx(due, abs=1e-6)}
    assert _queue(broker) == []
    assert broker.client.llen(broker.keys.wake) == 0, "nothing to wake a worker for yet"


@pytest.mark.timeout(10)
def test_enqueue_with_a_due_time_already_past_queues_at_once(broker):
    job_id = _enqueue(broker, due=time.time() - 5)
    assert _state(broker, job_id) == "queued"
    assert _queue(broker) == [job_id] and _scheduled(broker) == {}


@pytest.mark.timeout(10)
def test_enqueue_many_with_a_future_due_schedules_every_job(broker):
    due = time.time() + 60
    items = [(new_job_id(), b'{"n": %d}' % i) for i in range(5)]
    assert broker.enqueue_many("noop", "low", items, due) == 5
    assert _scheduled(broker) == {i: pytest.approx(due, abs=1e-6) for i, _ in items}
    for job_id, params in items:
        record = _record(broker, job_id)
        assert record["state"] == "scheduled" and record["params"] == params.decode()
        assert float(record["due_at"]) == pytest.approx(due, abs=1e-6)
    assert _queue(broker, "low") == [] and broker.client.llen(broker.keys.wake) == 0


@pytest.mark.timeout(10)
def test_promote_leaves_a_job_that_is_not_due_and_says_when_it_is(broker):
    due = time.time() + 30
    job_id = _enqueue(broker, due=due)
    moved, next_due = broker.promote(FALLBACK)
    assert moved == 0 and next_due == pytest.approx(due, abs=1e-6)
    assert _state(broker, job_id) == "scheduled"
    assert _queue(broker) == [] and _queue(broker, FALLBACK) == []
    assert _scheduled(broker) == {job_id: pytest.approx(due, abs=1e-6)}


@pytest.mark.timeout(10)
def test_promote_queues_a_due_job_at_the_back_of_its_queue_once(broker):
    waiting = _enqueue(broker)
    due = time.time() + 0.3
    later = _enqueue(broker, due=due)
    moved = wait_for(lambda: broker.promote(FALLBACK)[0], timeout=5, what="the delayed job to be promoted")
    assert moved == 1 and time.time() >= due
    assert _queue(broker) == [waiting, later]
    record = _record(broker, later)
    assert record["state"] == "queued" and "due_at" not in record
    assert _scheduled(broker) == {}
    assert broker.promote(FALLBACK) == (0, None)
    assert _queue(broker) == [waiting, later], "promoting again never queues an id twice"


@pytest.mark.timeout(10)
def test_promote_drops_ids_whose_job_is_no_longer_waiting_for_its_time(broker):
    succeeded = _enqueue(broker)
    _start(broker, "w1")
    assert broker.ack("w1", [(succeeded.encode(), b"1")]) == 1
    running = _enqueue(broker)
    assert _start(broker, "w2") == running
    queued = _enqueue(broker)
    past = time.time() - 1
    broker.client.zadd(broker.keys.scheduled, {succeeded: past, running: past, queued: past})
    assert broker.promote(FALLBACK) == (0, None)
    assert _scheduled(broker) == {}
    assert _queue(broker) == [queued] and _queue(broker, FALLBACK) == []
    assert [_state(broker, j) for j in (succeeded, running, queued)] == ["succeeded", "running", "queued"]
    assert _processing(broker, "w2") == [running]


@pytest.mark.timeout(10)
def test_promote_sends_a_scheduled_id_without_a_record_to_the_fallback_queue(broker):
    orphan = new_job_id()
    broker.client.zadd(broker.keys.scheduled, {orphan: time.time() - 1})
    broker.promote(FALLBACK)
    assert _scheduled(broker) == {}
    assert _queue(broker, FALLBACK) == [orphan] and _queue(broker) == []
    broker.register_worker("w1", 10.0, {"host": "test", "pid": 1})
    taken = broker.fetch("w1", QUEUES)
    assert [(j.id, j.malformed) for j in taken] == [(orphan, True)], "a worker gets it to dead-letter"


@pytest.mark.timeout(10)
def test_promote_moves_at_most_limit_jobs_per_call_in_due_order(broker):
    base = time.time() + 0.2
    ids = [_enqueue(broker, due=base + i * 0.001) for i in range(5)]
    _wait_until_past(base + 0.01)
    assert [broker.promote(FALLBACK, limit=2)[0] for _ in range(4)] == [2, 2, 1, 0]
    assert _queue(broker) == ids
    assert _scheduled(broker) == {}


@pytest.mark.timeout(30)
def test_concurrent_promoters_one_of_them_killed_queue_every_job_exactly_once(redis_url, namespace, broker):
    """promote.lua is one atomic step: promoters racing each other, and one dying between two of its
    calls (the only place it can die, as Redis runs a script to the end), neither lose nor duplicate a job."""
    count, promoters = 500, 4
    due = time.time() + 0.3
    items = [(new_job_id(), b"{}") for _ in range(count)]
    assert broker.enqueue_many("noop", "default", items, due) == count
    stop = threading.Event()
    moved = [0] * promoters
    errors: list[BaseException] = []

    def promoter(index: int) -> None:
        client = redis.Redis.from_url(redis_url)
        own = Broker(client, namespace, result_ttl_s=RESULT_TTL_S)
        try:
            while not stop.is_set():
                n, _ = own.promote(FALLBACK, limit=5)
                moved[index] += n
                if index == 0 and n:
                    client.close()  # promoter 0 is killed after its first batch
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=promoter, args=(i,), daemon=True) for i in range(promoters)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: broker.client.zcard(broker.keys.scheduled) == 0, timeout=20,
                 what="every scheduled job to be promoted")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert errors == []
    assert sum(moved) == count and moved[0] > 0
    queue = _queue(broker)
    assert len(queue) == count and sorted(queue) == sorted(i for i, _ in items)
    assert _queue(broker, FALLBACK) == []
    assert sum(1 for e in _events(broker) if e["event"] == "queued" and e["detail"] == "due") == count
    with broker.client.pipeline(transaction=False) as pipe:
        for job_id, _ in items:
            pipe.hget(broker.keys.job(job_id), "state")
        assert set(pipe.execute()) == {b"queued"}


# --- cancel ----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_cancel_of_a_queued_job_removes_it_and_keeps_its_record_for_the_retention(broker):
    job_id, other = _enqueue(broker), _enqueue(broker)
    assert broker.cancel(job_id) == "cancelled"
    record = _record(broker, job_id)
    assert record["state"] == "cancelled" and "finished_at" in record
    assert 0 < broker.client.pttl(broker.keys.job(job_id)) <= RESULT_TTL_S * 1000
    assert _queue(broker) == [other]
    assert _start(broker) == other


@pytest.mark.parametrize("waiting", ["scheduled", "retrying"])
@pytest.mark.timeout(10)
def test_cancel_of_a_job_waiting_for_its_time_removes_it_from_the_schedule(broker, waiting):
    if waiting == "scheduled":
        job_id = _enqueue(broker, due=time.time() + 30)
    else:
        job_id = _enqueue(broker)
        _start(broker)
        assert broker.fail("w1", job_id, _retry()) == FAIL_RETRYING
    assert _state(broker, job_id) == waiting
    assert broker.cancel(job_id) == "cancelled"
    record = _record(broker, job_id)
    assert record["state"] == "cancelled" and "due_at" not in record
    assert _scheduled(broker) == {} and _queue(broker) == []
    assert 0 < broker.client.pttl(broker.keys.job(job_id)) <= RESULT_TTL_S * 1000


@pytest.mark.timeout(10)
def test_cancel_of_a_running_job_is_a_request_that_reclaim_carries_out(broker):
    job_id = _enqueue(broker)
    _start(broker)
    assert broker.cancel(job_id) == "cancelling"
    record = _record(broker, job_id)
    assert record["state"] == "running" and "cancel_requested" in record
    assert broker.cancel_requests() == [job_id]
    assert _processing(broker) == [job_id]
    assert broker.client.pttl(broker.keys.job(job_id)) == -1

    assert broker.reclaim("w1", count_crash=False, crash_limit=3, reason="stopped to cancel",
                          only_if_expired=False, fallback_queue=FALLBACK) == (0, 0)
    record = _record(broker, job_id)
    assert record["state"] == "cancelled" and "cancel_requested" not in record
    assert broker.cancel_requests() == []
    assert _queue(broker) == [] and _processing(broker) == [] and _dead(broker) == []
    assert 0 < broker.client.pttl(broker.keys.job(job_id)) <= RESULT_TTL_S * 1000


@pytest.mark.timeout(10)
def test_a_cancel_request_wins_over_the_crash_limit(broker):
    job_id = _enqueue(broker)
    _start(broker)
    assert broker.cancel(job_id) == "cancelling"
    assert broker.reclaim("w1", count_crash=True, crash_limit=1, reason="killed", only_if_expired=False,
                          fallback_queue=FALLBACK) == (0, 0)
    assert _state(broker, job_id) == "cancelled"
    assert _dead(broker) == [] and _queue(broker) == []


@pytest.mark.timeout(10)
def test_release_of_an_unstarted_job_with_a_cancel_request_cancels_it(broker):
    first, second = _enqueue(broker), _enqueue(broker)
    broker.register_worker("w1", 10.0, {"host": "test", "pid": 1})
    batch = broker.fetch("w1", QUEUES, limit=2)
    assert [j.id for j in batch] == [first, second]
    assert broker.cancel(second) == "cancelling"
    assert broker.release("w1", [batch[1].raw_id]) == 1
    assert _state(broker, second) == "cancelled"
    assert broker.cancel_requests() == []
    assert _queue(broker) == [] and _processing(broker) == [first]


@pytest.mark.timeout(10)
def test_cancel_of_an_ended_job_returns_its_state_and_changes_nothing(broker):
    succeeded = _enqueue(broker)
    _start(broker)
    assert broker.ack("w1", [(succeeded.encode(), b"1")]) == 1
    failed = _dead_lettered(broker)
    for job_id, state in ((succeeded, "succeeded"), (failed, "failed")):
        before = _record(broker, job_id)
        ttl_before = broker.client.ttl(broker.keys.job(job_id))
        assert broker.cancel(job_id) == "ended", state
        assert _record(broker, job_id) == before
        assert broker.client.ttl(broker.keys.job(job_id)) in (ttl_before, ttl_before - 1)
    assert broker.cancel_requests() == [] and _dead(broker) == [failed]


@pytest.mark.timeout(10)
def test_cancel_of_an_unknown_id_is_missing_and_creates_nothing(broker):
    job_id = new_job_id()
    assert broker.cancel(job_id) == "missing"
    assert not broker.client.exists(broker.keys.job(job_id))
    assert broker.cancel_requests() == []


@pytest.mark.timeout(10)
def test_drop_stale_cancel_requests_keeps_only_jobs_still_running(broker):
    running, ended = _enqueue(broker), _enqueue(broker)
    _start(broker, "w1")
    _start(broker, "w2")
    assert broker.cancel(running) == broker.cancel(ended) == "cancelling"
    assert broker.ack("w2", [(ended.encode(), b"1")]) == 1
    unknown = new_job_id()
    broker.client.sadd(broker.keys.cancelling, unknown)
    assert broker.cancel_requests() == sorted([running, ended, unknown])
    broker.drop_stale_cancel_requests([running, ended, unknown])
    assert broker.cancel_requests() == [running]


@pytest.mark.timeout(10)
def test_a_job_cancelled_while_running_is_not_retried_when_it_then_fails(broker):
    job_id = _enqueue(broker)
    _start(broker)
    assert broker.cancel(job_id) == "cancelling"
    broker.fail("w1", job_id, _retry(retries=3, retry_at=time.time() - 1))
    broker.promote(FALLBACK)
    assert _queue(broker) == [], "a job someone cancelled must not be queued to run again"
    assert _scheduled(broker) == {}
    assert _state(broker, job_id) == "cancelled"


# --- requeue and purge of the dead-letter list -----------------------------


@pytest.mark.timeout(10)
def test_requeue_puts_a_dead_job_back_at_the_end_of_its_queue_with_clean_counters(broker):
    job_id = _enqueue(broker)
    _start(broker, "w1")
    broker.reclaim("w1", count_crash=True, crash_limit=3, reason="killed", only_if_expired=False,
                   fallback_queue=FALLBACK)
    _start(broker, "w2")
    assert broker.fail("w2", job_id, _retry(retries=1, retry_at=time.time() - 1)) == FAIL_RETRYING
    broker.promote(FALLBACK)
    _start(broker, "w3")
    assert broker.fail("w3", job_id, Failure("final", "bad", "tb")) == FAIL_DEAD
    dead = _record(broker, job_id)
    assert (dead["state"], dead["attempts"], dead["failures"], dead["crashes"]) == ("failed", "3", "2", "1")
    broker.client.pexpire(broker.keys.job(job_id), 60_000)  # a retention someone gave the record
    other = _enqueue(broker)

    assert broker.requeue([job_id]) == [1]
    record = _record(broker, job_id)
    assert record["state"] == "queued"
    cleared = {"attempts", "failures", "crashes", "error", "traceback", "finished_at", "started_at", "worker",
               "last_crash", "due_at"}
    assert cleared.isdisjoint(record), f"left over: {sorted(cleared & set(record))}"
    assert (record["job"], record["queue"], record["params"]) == ("noop", "default", "{}")
    assert broker.client.ttl(broker.keys.job(job_id)) == -1
    assert _queue(broker) == [other, job_id] and _dead(broker) == []
    assert _event_names(broker, job_id)[-1] == ("queued", "requeued from the dead-letter list")


@pytest.mark.timeout(10)
def test_a_requeued_job_starts_again_from_attempt_one(broker):
    job_id = _dead_lettered(broker)
    assert broker.requeue([job_id]) == [1]
    broker.register_worker("w2", 10.0, {"host": "test", "pid": 2})
    taken = broker.fetch("w2", QUEUES)
    assert [(j.id, j.attempts, j.failures, j.crashes) for j in taken] == [(job_id, 1, 0, 0)]


@pytest.mark.timeout(10)
def test_requeue_of_a_job_not_in_the_dead_letter_list_returns_0(broker):
    queued = _enqueue(broker)
    assert broker.requeue([queued, new_job_id()]) == [0, 0]
    assert _queue(broker) == [queued] and _state(broker, queued) == "queued"
    assert broker.requeue([]) == []


@pytest.mark.timeout(10)
def test_requeue_of_a_buried_malformed_entry_returns_minus_1_and_keeps_it(broker):
    garbage = "not-a-job"
    broker.client.rpush(broker.keys.queue("default"), garbage)
    broker.register_worker("w1", 10.0, {"host": "test", "pid": 1})
    taken = broker.fetch("w1", QUEUES)
    assert taken[0].malformed
    buried = new_job_id()
    assert broker.bury("w1", taken[0].raw_id, buried, "malformed queue entry")
    assert _dead(broker) == [buried] and _state(broker, buried) == "dead"
    assert broker.requeue([buried]) == [-1]
    assert _dead(broker) == [buried]
    assert all(_queue(broker, q) == [] for q in QUEUES)


@pytest.mark.timeout(10)
def test_purge_dead_deletes_the_oldest_records_first_a_chunk_at_a_time(broker):
    a, b, c = (_dead_lettered(broker) for _ in range(3))
    assert broker.purge_dead(limit=2) == 2
    assert _dead(broker) == [c]
    assert not broker.client.exists(broker.keys.job(a), broker.keys.job(b))
    assert _state(broker, c) == "failed"
    assert broker.purge_dead(limit=2) == 1
    assert _dead(broker) == [] and not broker.client.exists(broker.keys.job(c))
    assert broker.purge_dead() == 0


# --- events ----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_successful_job_emits_queued_started_succeeded(broker):
    before = time.time()
    job_id = _enqueue(broker)
    _start(broker)
    broker.ack("w1", [(job_id.encode(), b"1")])
    events = _events(broker, job_id)
    assert [list(e) for e in events] == [EVENT_FIELDS] * 3
    assert [(e["event"], e["detail"]) for e in events] == [("queued", ""), ("started", "attempt 1"), ("succeeded", "")]
    assert {e["job"] for e in events} == {"noop"}
    stamps = [float(e["ts"]) for e in events]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= time.time()


@pytest.mark.timeout(10)
def test_a_retried_job_emits_retrying_then_queued_when_promoted(broker):
    job_id = _enqueue(broker)
    _start(broker)
    broker.fail("w1", job_id, _retry("boom", retries=2, retry_at=time.time() - 1))
    broker.promote(FALLBACK)
    _start(broker)
    broker.ack("w1", [(job_id.encode(), b"1")])
    assert _event_names(broker, job_id) == [
        ("queued", ""), ("started", "attempt 1"), ("retrying", "retry 1 of 2: boom"), ("queued", "retry due"),
        ("started", "attempt 2"), ("succeeded", ""),
    ]


@pytest.mark.timeout(10)
def test_schedule_cancel_failure_and_dead_letter_each_emit_their_event(broker):
    due = time.time() + 30
    scheduled = _enqueue(broker, due=due)
    broker.cancel(scheduled)
    assert [e for e, _ in _event_names(broker, scheduled)] == ["scheduled", "cancelled"]
    assert float(_events(broker, scheduled)[0]["detail"]) == pytest.approx(due, abs=1e-6)

    failed = _dead_lettered(broker)
    assert _event_names(broker, failed)[-1] == ("failed", f"error of {failed}")
    unrunnable = _enqueue(broker)
    _start(broker)
    broker.fail("w1", unrunnable, Failure("dead", "cannot run: unknown job"))
    assert _event_names(broker, unrunnable)[-1] == ("dead", "cannot run: unknown job")
    assert all(list(e) == EVENT_FIELDS for e in _events(broker))


@pytest.mark.timeout(10)
def test_events_cap_zero_writes_and_publishes_nothing(broker):
    silent = Broker(broker.client, broker.keys.namespace, events_cap=0, result_ttl_s=RESULT_TTL_S)
    pubsub = _subscribed(broker)
    try:
        job_id = _enqueue(silent)
        _start(silent)
        silent.fail("w1", job_id, _retry(retry_at=time.time() - 1))
        silent.promote(FALLBACK)
        _start(silent)
        silent.ack("w1", [(job_id.encode(), b"1")])
        silent.cancel(_enqueue(silent, due=time.time() + 30))
        assert not broker.client.exists(broker.keys.events)
        marker = _enqueue(broker)  # the first message that arrives must be this one
        message = wait_for(lambda: pubsub.get_message(timeout=0.1), timeout=5, what="the marker's event")
        assert json.loads(message["data"])["id"] == marker
    finally:
        pubsub.close()


@pytest.mark.timeout(10)
def test_the_events_stream_stays_capped(broker):
    capped = Broker(broker.client, broker.keys.namespace, events_cap=10, result_ttl_s=RESULT_TTL_S)
    for _ in range(200):
        _enqueue(capped)
    length = broker.client.xlen(broker.keys.events)
    assert 10 <= length < 150, "MAXLEN ~ trims whole nodes, so the length is only roughly the cap"


@pytest.mark.timeout(10)
def test_every_event_is_published_as_json_on_the_events_channel(broker):
    pubsub = _subscribed(broker)
    try:
        job_id = _enqueue(broker)
        _start(broker)
        broker.ack("w1", [(job_id.encode(), b"1")])
        received: list[dict[str, Any]] = []

        def three_received() -> bool:
            message = pubsub.get_message(timeout=0.1)
            if message:
                received.append(json.loads(message["data"]))
            return len(received) == 3

        wait_for(three_received, timeout=5, what="three published events")
    finally:
        pubsub.close()
    assert all(set(m) == set(EVENT_FIELDS) for m in received)
    stream = _events(broker, job_id)
    assert [(m["id"], m["event"], m["job"], m["detail"]) for m in received] == [
        (e["id"], e["event"], e["job"], e["detail"]) for e in stream]
    assert [m["ts"] for m in received] == pytest.approx([float(e["ts"]) for e in stream], abs=0.01)


@pytest.mark.timeout(10)
def test_jobs_waiting_for_a_retry_are_counted_until_promoted_or_cancelled(broker):
    """The retrying set is what `supervise --until-empty` waits for; delayed submits are not in it."""
    retried, cancelled = _enqueue(broker), _enqueue(broker)
    _enqueue(broker, due=time.time() + 60)
    for job_id in (retried, cancelled):
        _start(broker)
        assert broker.fail("w1", job_id, _retry(retries=1, retry_at=time.time() + 0.2)) == FAIL_RETRYING
    assert broker.client.smembers(broker.keys.retrying) == {retried.encode(), cancelled.encode()}
    assert broker.cancel(cancelled) == "cancelled"
    assert broker.client.smembers(broker.keys.retrying) == {retried.encode()}
    wait_for(lambda: broker.promote(FALLBACK)[0] == 1, timeout=5, what="the retry to fall due")
    assert broker.client.scard(broker.keys.retrying) == 0


@pytest.mark.parametrize("tampered", ["x", "1.5", "-3"])
@pytest.mark.timeout(10)
def test_a_tampered_failure_counter_never_loses_the_job(broker, tampered):
    job_id = _enqueue(broker)
    _start(broker)
    broker.client.hset(broker.keys.job(job_id), "failures", tampered)
    assert broker.fail("w1", job_id, _retry(retries=3, retry_at=time.time() + 30)) == FAIL_RETRYING
    assert _state(broker, job_id) == "retrying" and job_id in _scheduled(broker)
    assert broker.client.hget(broker.keys.job(job_id), "failures") in (b"1", b"2")
