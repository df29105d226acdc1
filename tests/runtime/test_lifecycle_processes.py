"""The job lifecycle under real supervisors: retries and backoff, delayed jobs, time and memory limits,
cancellation, result limits and worker recycling. Real processes, real signals, the session's Redis."""
from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import psutil
import pytest

from tests.support.project import wait_for


def _events(project, job_id: str, kind: str | None = None) -> list[dict]:
    """The job's events from the stream, oldest first (optionally of one kind)."""
    return [e for e in project.client.events.history(5000)
            if e["id"] == job_id and (kind is None or e["event"] == kind)]


def _workers_of(sup) -> list[int]:
    return [c.pid for c in psutil.Process(sup.pid).children() if c.status() != psutil.STATUS_ZOMBIE]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_idle_workers(project, count: int) -> None:
    wait_for(lambda: len([w for w in project.workers() if w["alive"]]) == count, what=f"{count} idle workers")


# --- retries and backoff -------------------------------------------------------


@pytest.mark.timeout(30)
def test_job_failing_twice_then_succeeding_uses_its_retries(project):
    job_id = project.submit("flaky", times=2, tag="f")
    project.supervise("--workers", "1")
    assert project.client.wait([job_id], 20) == {job_id: "succeeded"}
    info = project.job(job_id)
    assert (info["attempts"], info["failures"], info["crashes"]) == (3, 2, 0)
    assert info["result"] == "succeeded after 2 failures"
    assert project.tags_run() == ["f", "f", "f"]
    assert [e["detail"].split(":")[0] for e in _events(project, job_id, "retrying")] == ["retry 1 of 3",
                                                                                          "retry 2 of 3"]
    assert project.client.inspector.dead_ids() == []


@pytest.mark.timeout(30)
def test_retries_wait_for_their_backoff(project):
    """flaky-slow: exponential backoff from 1 s, no jitter: 1 s before the second attempt, 2 s before the third."""
    job_id = project.submit("flaky-slow", times=2, tag="slow")
    project.supervise("--workers", "2")
    assert project.client.wait([job_id], 20) == {job_id: "succeeded"}
    started = [e["ts"] for e in _events(project, job_id, "started")]
    retrying = [e["ts"] for e in _events(project, job_id, "retrying")]
    assert len(started) == 3 and len(retrying) == 2
    gaps = [b - a for a, b in zip(started, started[1:])]
    assert 1.0 <= gaps[0] < 1.5, gaps
    assert 2.0 <= gaps[1] < 2.5, gaps
    waits = [s - r for r, s in zip(retrying, started[1:])]
    assert 0.95 <= waits[0] < 1.5 and 1.95 <= waits[1] < 2.5, waits


@pytest.mark.timeout(30)
def test_job_whose_retries_run_out_fails_into_the_dead_letter_list(project):
    job_id = project.submit("fail-retried", tag="doomed")
    project.supervise("--workers", "1")
    assert project.client.wait([job_id], 20) == {job_id: "failed"}
    info = project.job(job_id)
    assert (info["attempts"], info["failures"], info["crashes"]) == (3, 3, 0)
    assert info["error"] == "RuntimeError: boom doomed"
    assert "RuntimeError" in info["traceback"]
    assert project.tags_run() == ["doomed"] * 3
    assert project.client.inspector.dead_ids() == [job_id]
    assert [d["id"] for d in project.client.dead()] == [job_id]


@pytest.mark.timeout(30)
def test_until_empty_finishes_the_retries_of_a_failing_job(project):
    """flaky-slow waits 1 s before its retry: long enough for every tick of --until-empty to see it."""
    job_id = project.submit("flaky-slow", times=1, tag="cron")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=20) == 0
    assert project.state(job_id) == "succeeded"
    assert project.tags_run() == ["cron"] * 2


@pytest.mark.timeout(30)
def test_permanent_error_fails_at_once_despite_retries(project):
    job_id = project.submit("permanent", tag="never")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=20) == 0
    info = project.job(job_id)
    assert info["state"] == "failed"
    assert (info["attempts"], info["failures"]) == (1, 1)
    assert "PermanentError: this input can never work" in info["error"]
    assert project.tags_run() == ["never"]
    assert _events(project, job_id, "retrying") == []
    assert project.client.inspector.dead_ids() == [job_id]


# --- delayed jobs ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_delayed_job_starts_when_due_not_before(project):
    project.supervise("--workers", "2")
    _wait_idle_workers(project, 2)
    job_id = project.client.submit_params("sleep", {"seconds": 0, "tag": "later"}, delay=1.5)
    info = project.job(job_id)
    assert info["state"] == "scheduled"
    due = info["due_at"]
    assert due - info["enqueued_at"] == pytest.approx(1.5, abs=0.01)
    assert project.client.wait([job_id], 15) == {job_id: "succeeded"}
    [started] = [e["ts"] for e in _events(project, job_id, "started")]
    assert started >= due, f"started {due - started:.3f}s early"
    assert started - due < 1.5, f"started {started - due:.3f}s after it was due"


@pytest.mark.timeout(90)
def test_promoting_supervisors_killed_at_random_lose_and_double_no_delayed_job(make_project):
    """Delayed jobs fall due while supervisors (and their workers) are SIGKILLed one after another.

    The crash limit is raised so that jobs caught in a killed worker's batch several times are not
    dead-lettered: this test is about promotion, and a job may legitimately start more than once
    when its worker dies (at-least-once). What must hold: each job is promoted once and succeeds once.
    """
    project = make_project(crash_limit=1000)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    tags: dict[str, str] = {}
    for group in range(30):
        params = [{"seconds": 0, "tag": f"p{group}-{i}"} for i in range(10)]
        ids = project.client.submit_many("sleep", params, delay=1.0 + group * 0.1)
        tags.update(zip(ids, (p["tag"] for p in params)))
    total = len(tags)
    inspector = project.client.inspector
    kills_while_due, rounds = 0, 0
    while rounds < 6 or (inspector.scheduled_count() and rounds < 15):
        sup = project.supervise("--workers", "2")
        time.sleep(rng.uniform(0.3, 1.0))
        scheduled_before = inspector.scheduled_count()
        os.killpg(sup.pid, signal.SIGKILL)
        sup.wait(timeout=10)
        kills_while_due += 0 < scheduled_before < total
        rounds += 1
    print(f"seed {seed}: {rounds} rounds, {kills_while_due} kills while jobs fell due")
    assert kills_while_due >= 2, f"the kills missed the window in which jobs fell due (seed {seed})"
    project.supervise("--workers", "2")
    states = project.client.wait(list(tags), 40)
    assert set(states.values()) == {"succeeded"}, f"seed {seed}"
    events = project.client.events.history(10000)
    succeeded = Counter(e["id"] for e in events if e["event"] == "succeeded")
    promoted = Counter(e["id"] for e in events if e["event"] == "queued" and e["detail"] == "due")
    assert {succeeded[j] for j in tags} == {1}, f"seed {seed}"
    assert {promoted[j] for j in tags} == {1}, f"seed {seed}"
    assert set(project.tags_run()) == set(tags.values())
    assert inspector.scheduled_count() == 0
    assert sum(inspector.queue_depths(project.client.settings.queues).values()) == 0
    wait_for(lambda: project.processing_total() == 0, what="nothing left in flight")


# --- time limits -------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_pure_python_infinite_loop_is_stopped_by_its_timeout(project):
    job_id = project.submit("forever", tag="loop")
    sup = project.supervise("--workers", "1")
    assert project.client.wait([job_id], 15) == {job_id: "failed"}
    info = project.job(job_id)
    assert "timed out" in info["error"]
    assert info["crashes"] == 0 and info["attempts"] == 1
    assert project.tags_run("cleanup") == ["loop"], "JobInterrupted reached the handler"
    [(_, looping_pid)] = project.runs()
    wait_for(lambda: _gone(looping_pid), what="the interrupted worker to exit")
    follow = project.submit("sleep", seconds=0, tag="after")
    assert project.client.wait([follow], 15) == {follow: "succeeded"}
    after_pid = dict(project.runs())["after"]
    assert after_pid != looping_pid and after_pid in _workers_of(sup)
    assert sup.poll() is None


@pytest.mark.timeout(30)
def test_job_stuck_in_sleep_is_stopped_by_its_timeout_and_retried_once(project):
    job_id = project.submit("block", tag="stuck")
    project.supervise("--workers", "1")
    assert project.client.wait([job_id], 20) == {job_id: "failed"}
    info = project.job(job_id)
    assert (info["attempts"], info["failures"], info["crashes"]) == (2, 2, 0)
    assert "timed out" in info["error"]
    assert project.tags_run() == ["stuck", "stuck"]
    assert len(_events(project, job_id, "retrying")) == 1


@pytest.mark.timeout(30)
def test_job_deaf_to_the_interrupt_is_killed_after_timeout_and_grace(make_project):
    project = make_project(timeout_grace="300ms")
    job_id = project.submit("deaf", tag="deaf")
    sup = project.supervise("--workers", "1")
    assert project.client.wait([job_id], 15) == {job_id: "failed"}
    info = project.job(job_id)
    assert "timed out" in info["error"]
    assert info["crashes"] == 0 and info["attempts"] == 1
    assert 0.8 <= info["finished_at"] - info["started_at"] < 3.0, "500ms timeout + 300ms grace, then SIGKILL"
    [(_, deaf_pid)] = project.runs()
    wait_for(lambda: _gone(deaf_pid), what="the deaf worker to be gone")
    log = project.supervisor_log()
    assert "did not stop within" in log and "out-of-memory killer" not in log
    assert sup.poll() is None


# --- memory limit, cancel, result limit -----------------------------------------------


@pytest.mark.timeout(30)
def test_job_over_its_memory_limit_is_killed_and_the_host_stays_healthy(project):
    job_id = project.submit("allocate", megabytes=600, tag="hog")
    sup = project.supervise("--workers", "1")
    assert project.client.wait([job_id], 20) == {job_id: "failed"}
    info = project.job(job_id)
    assert "memory limit exceeded" in info["error"] and "memory_limit" in info["error"]
    assert info["crashes"] == 0
    assert project.tags_run("end") == [], "the job was stopped before it had allocated everything"
    [(_, hog_pid)] = project.runs()
    wait_for(lambda: _gone(hog_pid), what="the worker over its memory limit to be gone")
    assert sup.poll() is None
    follow = project.submit("noop")
    assert project.client.wait([follow], 15) == {follow: "succeeded"}


@pytest.mark.timeout(30)
def test_cancelling_a_running_job_stops_its_worker_and_ends_the_job(project):
    job_id = project.submit("hang", tag="h")
    sup = project.supervise("--workers", "2")
    hang_pid = wait_for(lambda: dict(project.runs()).get("h"), what="the hanging job to start")
    assert project.client.cancel(job_id) == "cancelling"
    assert project.client.wait([job_id], 15) == {job_id: "cancelled"}
    info = project.job(job_id)
    assert (info["failures"], info["crashes"]) == (0, 0)
    wait_for(lambda: len(_workers_of(sup)) == 2 and hang_pid not in _workers_of(sup),
             what="the cancelled job's worker to be replaced")
    assert project.client.inspector.dead_ids() == []
    assert project.redis.lrange(project.keys.queue("default"), 0, -1) == []
    assert project.client.inspector.scheduled_count() == 0
    assert project.tags_run() == ["h"]
    assert [e["event"] for e in _events(project, job_id)] == ["queued", "started", "cancelled"]


@pytest.mark.timeout(30)
def test_result_over_max_result_fails_the_job_without_retrying(make_project):
    project = make_project(max_result="1KiB")
    (project.root / "jobs" / "big-retried.yaml").write_text(
        "name: big-retried\nhandler: testjobs:big_result\nqueue: default\nretries: 3\nbackoff: 50ms\n"
        "params:\n  size: {type: int, required: true}\n")
    big, small = project.submit("big-retried", size=5000), project.submit("big-retried", size=100)
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=20) == 0
    info = project.job(big)
    assert info["state"] == "failed"
    assert "max_result" in info["error"] and "5002 bytes" in info["error"]
    assert (info["attempts"], info["failures"]) == (1, 1)
    assert _events(project, big, "retrying") == []
    assert project.job(small)["state"] == "succeeded"


# --- recycling ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_workers_are_recycled_after_max_jobs_per_worker(make_project):
    project = make_project(max_jobs_per_worker=3, workers=1)
    ids = [project.submit("sleep", seconds=0, tag=f"r{i}") for i in range(10)]
    project.supervise()
    assert set(project.client.wait(ids, 20).values()) == {"succeeded"}
    pids = Counter(pid for _, pid in project.runs())
    assert sorted(project.tags_run()) == sorted(f"r{i}" for i in range(10))
    assert max(pids.values()) <= 3, f"jobs per worker pid: {dict(pids)}"
    assert len(pids) >= 4
    log = project.supervisor_log()
    assert "WARNING" not in log and "out-of-memory killer" not in log
    assert log.count("exited to be recycled") >= 3


@pytest.mark.timeout(30)
def test_a_timed_out_command_job_takes_the_processes_it_started_with_it(project):
    marker = f"batchrun-grandchild-{project.namespace}"

    def leftovers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])
                and p.status() != psutil.STATUS_ZOMBIE]

    project.supervise()
    job_id = project.submit("spawner", marker=marker)
    wait_for(leftovers, timeout=10, what="the command to start its own child")
    assert project.client.wait([job_id], 15)[job_id] == "failed"
    assert "timed out" in project.job(job_id)["error"]
    wait_for(lambda: not leftovers(), timeout=5, what="the command's child to be killed with it")
