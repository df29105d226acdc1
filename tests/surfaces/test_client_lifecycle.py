"""The Client API against the real server: delayed submits, cancel, wait, the dead-letter list, retention.

No supervisor runs here: a fake worker takes and ends jobs through the
client's own broker, so each test controls exactly when a job ends.
"""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import batchrun.store.events
import batchrun.surfaces.client
from batchrun.errors import JobNotFound, SubmitError, WaitTimeout
from batchrun.ids import new_job_id
from batchrun.store.broker import FAIL_DEAD, Broker, Failure
from batchrun.surfaces.client import Client, due_time
from tests.support.project import Project, wait_for


# --- helpers: a fake worker on the client's broker -------------------------


def _take(client: Client, worker: str = "w1", limit: int = 1) -> list[str]:
    client.broker.register_worker(worker, 10.0, {"host": "test", "pid": 1})
    return [job.id for job in client.broker.fetch(worker, client.settings.queues, limit)]


def _succeed(client: Client, worker: str, job_id: str, result: bytes = b"1") -> None:
    assert client.broker.ack(worker, [(job_id.encode(), result)]) == 1


def _dead_letter(client: Client, count: int) -> list[str]:
    """`count` jobs that each ran once and failed for good, oldest first."""
    ids = []
    for i in range(count):
        job_id = client.submit("noop")
        assert _take(client) == [job_id]
        assert client.broker.fail("w1", job_id, Failure("final", f"boom {i}")) == FAIL_DEAD
        ids.append(job_id)
    return ids


def _bury_garbage(client: Client) -> str:
    """A queue entry with no record, dead-lettered the way a worker does it; returns its new id."""
    client.connection.client.rpush(client.broker.keys.queue("default"), "garbage")
    client.broker.register_worker("w1", 10.0, {"host": "test", "pid": 1})
    taken = client.broker.fetch("w1", client.settings.queues)
    assert taken[0].malformed
    buried = new_job_id()
    assert client.broker.bury("w1", taken[0].raw_id, buried, "malformed queue entry")
    return buried


def _queue(client: Client, queue: str = "default") -> list[str]:
    return [i.decode() for i in client.connection.client.lrange(client.broker.keys.queue(queue), 0, -1)]


def _nothing_waiting(client: Client) -> bool:
    status = client.status()
    return status["scheduled"] == 0 and sum(status["queues"].values()) == 0


def _finish_once_someone_waits(client: Client, job_id: str,
                               worker: str = "w1") -> tuple[threading.Thread, list[BaseException]]:
    """From another thread, end a taken job as soon as a `wait` has subscribed to the events channel;
    returns the thread and the list where it puts any error."""
    redis_client = client.connection.client
    channel = client.broker.keys.events
    errors: list[BaseException] = []

    def finish() -> None:
        try:
            wait_for(lambda: redis_client.pubsub_numsub(channel)[0][1] > 0, timeout=5, what="a waiter to subscribe")
            _succeed(client, worker, job_id)
        except BaseException as exc:  # noqa: BLE001 - checked by the test through `errors`
            errors.append(exc)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread, errors


def _gone(client: Client, job_id: str) -> bool:
    try:
        client.job(job_id)
    except JobNotFound:
        return True
    return False


# --- due_time and delayed submits -----------------------------------------


@pytest.mark.timeout(10)
def test_a_delay_and_a_time_together_are_refused_and_nothing_is_written(project):
    with pytest.raises(SubmitError, match="not both"):
        due_time(5, time.time() + 5)
    with pytest.raises(SubmitError, match="not both"):
        project.client.submit_params("noop", {}, delay=5, at=time.time() + 5)
    assert _nothing_waiting(project.client)


@pytest.mark.timeout(10)
def test_a_time_without_a_time_zone_is_refused(project):
    naive = datetime.now() + timedelta(hours=1)
    with pytest.raises(SubmitError, match="time zone"):
        due_time(None, naive)
    with pytest.raises(SubmitError, match="time zone"):
        project.client.submit_many("noop", [{}, {}], at=naive)
    assert _nothing_waiting(project.client)


@pytest.mark.parametrize("delay", [-1, -0.001, timedelta(seconds=-5)])
@pytest.mark.timeout(10)
def test_a_negative_delay_is_refused(project, delay):
    with pytest.raises(SubmitError, match="negative|finite"):
        due_time(delay, None)
    with pytest.raises(SubmitError, match="negative|finite"):
        project.client.submit_params("noop", {}, delay=delay)
    assert _nothing_waiting(project.client)


@pytest.mark.parametrize("delay", [math.nan, math.inf])
@pytest.mark.timeout(10)
def test_a_delay_that_is_not_a_finite_number_is_refused(delay):
    with pytest.raises(SubmitError):
        due_time(delay, None)


@pytest.mark.timeout(10)
def test_due_time_accepts_seconds_a_timedelta_an_aware_datetime_or_a_unix_time():
    now = time.time()
    assert due_time(90, None) == pytest.approx(now + 90, abs=1)
    assert due_time(timedelta(minutes=5), None) == pytest.approx(now + 300, abs=1)
    later = datetime.now(timezone(timedelta(hours=2))) + timedelta(hours=1)
    assert due_time(None, later) == pytest.approx(now + 3600, abs=1)
    assert due_time(None, now + 42) == now + 42
    assert due_time(None, None) == 0.0 and due_time(0, None) == 0.0


@pytest.mark.timeout(10)
def test_a_submit_with_a_timedelta_delay_is_scheduled_for_then(project):
    before = time.time()
    job_id = project.client.submit_params("noop", {}, delay=timedelta(minutes=5))
    info = project.client.job(job_id)
    assert info["state"] == "scheduled"
    assert before + 300 <= info["due_at"] <= time.time() + 300
    assert project.client.status()["scheduled"] == 1 and _queue(project.client) == []


@pytest.mark.parametrize("at", [
    pytest.param(lambda: datetime.now(timezone.utc) - timedelta(hours=1), id="datetime"),
    pytest.param(lambda: time.time() - 10, id="unix-time"),
])
@pytest.mark.timeout(10)
def test_a_time_already_past_queues_the_job_now(project, at):
    job_id = project.client.submit_params("noop", {}, at=at())
    ids = project.client.submit_many("noop", [{}, {}], at=at())
    assert [project.client.job(j)["state"] for j in [job_id, *ids]] == ["queued"] * 3
    assert _queue(project.client) == [job_id, *ids]
    assert project.client.status()["scheduled"] == 0


@pytest.mark.timeout(10)
def test_a_delayed_job_stays_scheduled_and_can_be_cancelled(project):
    client = project.client
    job_id = client.submit_params("sleep", {"seconds": 0.1}, delay=60)
    info = client.job(job_id)
    assert info["state"] == "scheduled" and info["params"] == {"seconds": 0.1, "tag": ""}
    assert client.broker.promote("high") == (0, pytest.approx(info["due_at"], abs=1e-3))
    assert client.job(job_id)["state"] == "scheduled" and _queue(client) == []
    assert client.cancel(job_id) == "cancelled"
    assert client.job(job_id)["state"] == "cancelled"
    assert _nothing_waiting(client)
    assert client.cancel(job_id) == "ended", "cancelling again says it had already ended"
    with pytest.raises(JobNotFound):
        client.cancel(new_job_id())


@pytest.mark.timeout(10)
def test_submit_many_with_a_delay_schedules_every_job(project):
    ids = project.client.submit_many("sleep", [{"seconds": 0.1, "tag": str(i)} for i in range(4)], delay=60)
    assert [project.client.job(j)["state"] for j in ids] == ["scheduled"] * 4
    assert project.client.status()["scheduled"] == 4 and _queue(project.client) == []


# --- wait ------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_wait_returns_the_final_states_of_jobs_that_already_ended(project):
    client = project.client
    succeeded, failed, cancelled = client.submit("noop"), client.submit("noop"), client.submit("noop")
    assert _take(client) == [succeeded]
    _succeed(client, "w1", succeeded)
    assert _take(client) == [failed]
    client.broker.fail("w1", failed, Failure("final", "boom"))
    assert client.cancel(cancelled) == "cancelled"
    started = time.monotonic()
    assert client.wait([succeeded, failed, cancelled], timeout_s=5) == {
        succeeded: "succeeded", failed: "failed", cancelled: "cancelled"}
    assert time.monotonic() - started < 1


@pytest.mark.timeout(20)
def test_wait_wakes_on_the_published_event_not_on_its_poll(project, monkeypatch):
    monkeypatch.setattr(batchrun.store.events, "WAIT_POLL_S", 30.0)  # only the event can end the wait in time
    client = project.client
    job_id = client.submit("noop")
    assert _take(client) == [job_id]
    finisher, errors = _finish_once_someone_waits(client, job_id)
    started = time.monotonic()
    assert client.wait([job_id], timeout_s=8) == {job_id: "succeeded"}
    assert time.monotonic() - started < 5
    finisher.join(timeout=5)
    assert errors == []


@pytest.mark.timeout(10)
def test_wait_gives_up_with_the_states_so_far(project):
    client = project.client
    done, running, waiting = client.submit("noop"), client.submit("noop"), client.submit("noop")
    assert _take(client) == [done]
    _succeed(client, "w1", done)
    assert _take(client, "w2") == [running]
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait([done, running, waiting], timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    assert caught.value.states == {done: "succeeded", running: "running", waiting: "queued"}


@pytest.mark.timeout(10)
def test_wait_for_an_unknown_id_raises_job_not_found(project):
    known, unknown = project.client.submit("noop"), new_job_id()
    with pytest.raises(JobNotFound, match=unknown):
        project.client.wait([known, unknown], timeout_s=5)


@pytest.mark.timeout(15)
def test_wait_with_events_disabled_finds_the_end_by_polling(project):
    quiet = Client.open(project.root / "configs" / "batchrun.yaml", project.root / "jobs",
                        redis_url=project.redis_url, event_history=0)
    try:
        assert quiet.broker.events_cap == 0
        job_id = quiet.submit("noop")
        assert _take(quiet) == [job_id]
        finisher, errors = _finish_once_someone_waits(quiet, job_id)
        assert quiet.wait([job_id], timeout_s=8) == {job_id: "succeeded"}
        finisher.join(timeout=5)
        assert errors == []
        assert not quiet.connection.client.exists(quiet.broker.keys.events), "no event was written to wake it"
    finally:
        quiet.close()


# --- the dead-letter list --------------------------------------------------


@pytest.mark.timeout(10)
def test_dead_lists_dead_lettered_jobs_oldest_first_with_their_error(project):
    ids = _dead_letter(project.client, 3)
    dead = project.client.dead()
    assert [(d["id"], d["state"], d["error"]) for d in dead] == [(j, "failed", f"boom {i}") for i, j in enumerate(ids)]
    assert [d["id"] for d in project.client.dead(limit=2)] == ids[:2]


@pytest.mark.timeout(10)
def test_requeue_puts_chosen_dead_jobs_back_with_their_counters_reset(project):
    client = project.client
    ids = _dead_letter(client, 2)
    unknown = new_job_id()
    assert client.requeue([ids[0], unknown]) == {ids[0]: 1, unknown: 0}
    info = client.job(ids[0])
    assert info["state"] == "queued" and (info["attempts"], info["failures"]) == (0, 0) and "error" not in info
    assert _queue(client) == [ids[0]]
    assert [d["id"] for d in client.dead()] == [ids[1]]


@pytest.mark.timeout(10)
def test_requeue_all_goes_through_every_chunk_and_leaves_malformed_entries(project, monkeypatch):
    monkeypatch.setattr(batchrun.surfaces.client, "REQUEUE_CHUNK", 2)
    client = project.client
    first = _dead_letter(client, 2)
    buried = _bury_garbage(client)
    rest = _dead_letter(client, 3)
    assert [d["id"] for d in client.dead()] == [*first, buried, *rest]
    assert client.requeue_all() == 5
    assert [d["id"] for d in client.dead()] == [buried]
    assert _queue(client) == [*first, *rest]
    assert client.requeue_all() == 0


@pytest.mark.timeout(10)
def test_purge_dead_deletes_every_dead_job_and_its_record(project, monkeypatch):
    client = project.client
    ids = _dead_letter(client, 5)
    small_chunks = Broker.purge_dead.__get__(client.broker)
    monkeypatch.setattr(client.broker, "purge_dead", lambda: small_chunks(limit=2))
    assert client.purge_dead() == 5
    assert client.dead() == [] and client.status()["dead"] == 0
    assert all(_gone(client, j) for j in ids)
    assert client.purge_dead() == 0


# --- retention -------------------------------------------------------------


@pytest.mark.timeout(15)
def test_finished_and_cancelled_jobs_expire_after_the_result_retention(make_project):
    project: Project = make_project(result_ttl="1s")
    client = project.client
    finished, cancelled, waiting = client.submit("noop"), client.submit("noop"), client.submit("noop")
    assert _take(client) == [finished]
    _succeed(client, "w1", finished, b'{"answer": 42}')
    assert client.cancel(cancelled) == "cancelled"
    assert client.job(finished)["result"] == {"answer": 42}
    wait_for(lambda: _gone(client, finished) and _gone(client, cancelled), timeout=5,
             what="the finished and cancelled records to expire")
    assert client.job(waiting)["state"] == "queued", "a job still waiting never expires"
    with pytest.raises(JobNotFound):
        client.wait([finished], timeout_s=1)
