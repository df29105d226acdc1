"""Liveness: the supervisor vouches for its workers, workers die with their supervisor, frozen and
presumed-dead workers are stopped, and killed workers come back at once (see batchrun/liveness.py)."""
from __future__ import annotations

import os
import random
import signal
import time

import psutil
import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(60)


def _worker_pid(project, tag: str) -> int:
    return wait_for(lambda: dict(project.runs()).get(tag), what=f"job {tag} to start")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_job_holding_the_gil_for_three_ttls_runs_once_and_succeeds(project):
    """Test projects beat every 200 ms with a 1 s TTL; the job's one C call holds the GIL for 3 s."""
    job_id = project.submit("gil", seconds=3.0, tag="gil")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=30, what="the GIL-holding job to finish")
    assert project.tags_run() == ["gil"]
    info = project.job(job_id)
    assert info["attempts"] == 1 and info["crashes"] == 0


def test_a_job_holding_the_gil_is_not_reclaimed_by_another_host(project):
    project.supervise("--workers", "1", host="b")
    wait_for(lambda: len(project.workers()) == 1, what="the other host's worker")
    job_id = project.submit("gil", seconds=3.0, tag="gil")
    wait_for(lambda: project.runs(), what="the job to start on host b")
    project.supervise("--workers", "1", host="a")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=30, what="the GIL-holding job to finish")
    assert project.tags_run() == ["gil"], "the job ran exactly once"
    assert project.job(job_id)["attempts"] == 1


def test_a_killed_supervisors_workers_die_at_once_and_another_host_reruns_their_jobs(project):
    ids = [project.submit("sleep", seconds=30.0, tag=f"long{i}") for i in range(2)]
    doomed = project.supervise("--workers", "2", host="a")
    pids = [_worker_pid(project, f"long{i}") for i in range(2)]
    project.supervise("--workers", "2", host="b")
    wait_for(lambda: len(project.workers()) == 4, what="the other host's workers")
    killed = time.time()
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    wait_for(lambda: all(_gone(pid) for pid in pids), timeout=1.0, what="the dead supervisor's workers to die")
    wait_for(lambda: all(project.job(j)["attempts"] == 2 for j in ids), timeout=10, what="the jobs to run again")
    restarts = [project.job(j)["started_at"] - killed for j in ids]
    assert max(restarts) < 1.0 + 2.0, f"re-run within TTL + 2 s, took {restarts}"


def test_a_restarted_supervisor_reruns_its_dead_predecessors_jobs_at_once(make_project):
    """Same state folder: the new supervisor knows the old one is dead and needs no heartbeat to expire."""
    project = make_project(heartbeat_ttl="20s", heartbeat_interval="1s")
    job_id = project.submit("sleep", seconds=30.0, tag="held")
    first = project.supervise("--workers", "1")
    _worker_pid(project, "held")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed = time.time()
    project.supervise("--workers", "1")
    wait_for(lambda: project.job(job_id)["attempts"] == 2, timeout=15, what="the job to run again")
    info = project.job(job_id)
    assert info["started_at"] - killed < 5.0, "long before the 20 s TTL"
    assert info["crashes"] == 0, "the job did not kill anything"


def test_a_stopped_worker_is_killed_after_a_ttl_and_its_job_put_back(project):
    job_id = project.submit("sleep", seconds=30.0, tag="frozen")
    project.supervise("--workers", "1")
    pid = _worker_pid(project, "frozen")
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    wait_for(lambda: _gone(pid), timeout=10, what="the stopped worker to be killed")
    assert time.monotonic() - stopped >= 0.9, "a stopped worker is given one TTL"
    wait_for(lambda: project.job(job_id)["attempts"] == 2, timeout=10, what="the job to run again")
    assert project.job(job_id)["crashes"] == 0
    assert "has been stopped (SIGSTOP" in project.supervisor_log()


def test_a_frozen_host_is_presumed_dead_and_its_late_ack_is_refused(project):
    """A SIGSTOPped supervisor vouches for nobody: another host re-runs its job, the first attempt's
    outcome is refused, and when it wakes it stops its worker, whose heartbeat had expired."""
    job_id = project.submit("sleep", seconds=2.0, tag="twice")
    frozen = project.supervise("--workers", "1", host="a")
    pid = _worker_pid(project, "twice")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        project.supervise("--workers", "1", host="b")
        wait_for(lambda: project.tags_run().count("twice") == 2, timeout=15, what="host b to re-run the job")
        wait_for(lambda: project.tags_run("end").count("twice") >= 1, timeout=15, what="the first attempt to end")
        assert project.job(job_id)["attempts"] == 2, "the late ack of the first attempt was refused"
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for(lambda: _gone(pid), timeout=10, what="the presumed-dead worker to stop")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=15, what="the second attempt to finish")
    assert project.job(job_id)["attempts"] == 2


def test_a_killed_ready_worker_is_replaced_at_once_every_time(project):
    sup = project.supervise("--workers", "1")
    delays = []
    for _ in range(5):
        [worker] = wait_for(lambda: [w for w in project.workers() if w["alive"]], what="a ready worker")
        killed = time.monotonic()
        os.kill(int(worker["heartbeat"]["pid"]), signal.SIGKILL)
        wait_for(lambda: [w for w in project.workers() if w["id"] != worker["id"] and w["alive"]],
                 timeout=10, what="a replacement worker")
        delays.append(time.monotonic() - killed)
    assert max(delays) < 1.5, f"no backoff for workers that were ready: {delays}"
    assert sup.poll() is None


@pytest.mark.timeout(120)
def test_nothing_is_lost_while_workers_and_supervisors_are_killed(project):
    """A bounded storm: a random worker SIGKILLed every 0.3 s, and the supervisor itself twice."""
    ids = project.client.submit_many("sleep", [{"seconds": 0.002, "tag": f"s{i}"} for i in range(600)])
    sup = project.supervise("--workers", "2")
    rng = random.Random(7)
    supervisor_kills = 0
    deadline = time.monotonic() + 60
    while project.client.status()["queues"]["default"] and time.monotonic() < deadline:
        time.sleep(0.3)
        workers = psutil.Process(sup.pid).children()
        if workers:
            rng.choice(workers).kill()
        if supervisor_kills < 2 and len(project.runs("end")) > 200 * (supervisor_kills + 1):
            sup.kill()
            sup.wait(timeout=10)
            sup = project.supervise("--workers", "2")
            supervisor_kills += 1
    assert supervisor_kills == 2
    wait_for(lambda: all(project.state(j) == "succeeded" for j in ids), timeout=30, what="every job to succeed")
    assert set(project.tags_run("end")) == {f"s{i}" for i in range(600)}


def test_a_dead_hosts_jobs_come_back_within_a_second_of_its_heartbeat_ttl(make_project):
    """Host a dies whole (its process group SIGKILLed). With a beat every 2.5 s, a sweep on a fixed
    interval could find it up to 2.5 s after the TTL; the sweep timed to the next expiry finds it at once."""
    project = make_project(heartbeat_ttl="3s", heartbeat_interval="2500ms")
    ids = [project.submit("sleep", seconds=30.0, tag=f"long{i}") for i in range(2)]
    doomed = project.supervise("--workers", "2", host="a")
    for i in range(2):
        _worker_pid(project, f"long{i}")
    project.supervise("--workers", "1", host="b")
    wait_for(lambda: len(project.workers()) == 3, what="the other host's worker")
    killed = time.time()
    os.killpg(doomed.pid, signal.SIGKILL)
    wait_for(lambda: any(project.job(j)["attempts"] == 2 for j in ids), timeout=15, what="a job to run again")
    rerun = min(project.job(j)["started_at"] for j in ids if project.job(j)["attempts"] == 2)
    assert rerun - killed < 3.0 + 1.0, f"re-run within TTL + 1 s, took {rerun - killed:.2f}s"
    wait_for(lambda: sorted(project.state(j) for j in ids) == ["queued", "running"], timeout=5,
             what="the other job to be put back, to wait for host b's worker")


def test_status_groups_workers_by_host_and_a_dead_host_leaves_it(project):
    doomed = project.supervise("--workers", "1", host="a")
    project.supervise("--workers", "2", host="b")
    wait_for(lambda: len(project.workers()) == 3, what="both hosts' workers")
    hosts = project.client.status()["hosts"]
    assert {h: len(e["workers"]) for h, e in hosts.items()} == {"host-a": 1, "host-b": 2}
    text = project.cli("status").stdout
    assert "workers: 3 on 2 hosts" in text
    assert text.index("host host-a: 1 alive") < text.index("host host-b: 2 alive")
    os.killpg(doomed.pid, signal.SIGKILL)
    wait_for(lambda: project.client.status()["hosts"].get("host-a", {}).get("alive") == 0
             or "host-a" not in project.client.status()["hosts"], what="host a to leave the status")
