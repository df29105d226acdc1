"""Nothing lost: real supervisors, real workers, real SIGKILLs."""
from __future__ import annotations

import os
import signal
import sys

import psutil
import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(90)


def _worker_running(project, tag: str) -> int:
    """Pid of the worker that has started the job tagged `tag`."""
    return wait_for(lambda: dict(project.runs()).get(tag), what=f"job {tag} to start")


def test_worker_killed_mid_job_reruns_it_at_once(project):
    long_id = project.submit("sleep", seconds=2.0, tag="victim")
    others = [project.submit("sleep", seconds=0.05, tag=f"other{i}") for i in range(6)]
    sup = project.supervise()
    victim_pid = _worker_running(project, "victim")
    os.kill(victim_pid, signal.SIGKILL)
    wait_for(lambda: project.state(long_id) == "succeeded", timeout=30, what="the killed job to finish")
    assert all(project.state(j) == "succeeded" for j in others)
    starts = project.tags_run()
    assert starts.count("victim") == 2
    assert all(starts.count(f"other{i}") == 1 for i in range(6))
    info = project.job(long_id)
    assert info["crashes"] == 1 and info["attempts"] == 2
    wait_for(lambda: len([w for w in psutil.Process(sup.pid).children() if w.name().startswith("python")]) == 2,
             what="the killed worker to be replaced")
    assert victim_pid not in [c.pid for c in psutil.Process(sup.pid).children()]
    assert project.processing_total() == 0


def test_killed_supervisor_and_workers_jobs_finish_under_a_new_supervisor(project):
    ids = [project.submit("sleep", seconds=1.5, tag=f"j{i}") for i in range(4)]
    sup = project.supervise("--workers", "2")
    wait_for(lambda: len(project.runs()) == 2, what="two jobs to start")
    workers = psutil.Process(sup.pid).children()
    os.kill(sup.pid, signal.SIGKILL)
    for w in workers:
        w.kill()
    sup.wait(timeout=10)
    psutil.wait_procs(workers, timeout=10)
    assert project.processing_total() == 2
    project.supervise("--workers", "2")
    wait_for(lambda: all(project.state(j) == "succeeded" for j in ids), timeout=40, what="every job to finish")
    started = project.tags_run()
    assert sorted(set(started)) == [f"j{i}" for i in range(4)]
    assert len(started) == 6, "the two interrupted jobs ran again, the others once"
    assert project.processing_total() == 0


def test_job_that_kills_its_worker_is_dead_lettered_after_the_crash_limit(project):
    job_id = project.submit("crash", tag="poison")
    fine = project.submit("sleep", seconds=0.01, tag="fine")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) == "dead", timeout=40, what="the poison job to be dead-lettered")
    info = project.job(job_id)
    assert info["crashes"] == 3
    assert "died 3 times" in info["error"] and "SIGKILL" in info["error"]
    assert project.tags_run().count("poison") == 3
    wait_for(lambda: project.state(fine) == "succeeded", what="the other job to run")
    assert project.client.inspector.dead_ids() == [job_id]


def test_job_crashing_once_succeeds_on_the_next_try(project):
    job_id = project.submit("crash-once", tag="flaky")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=30, what="the flaky job to succeed")
    assert project.job(job_id)["crashes"] == 1


def test_long_cpu_job_is_not_reclaimed_while_its_worker_lives(project):
    """Heartbeat TTL is 1 s in test projects; the job holds the CPU for 3 s."""
    job_id = project.submit("spin", seconds=3.0, tag="long")
    project.supervise("--workers", "2")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=30, what="the long job to finish")
    assert project.tags_run() == ["long"]
    assert project.job(job_id)["attempts"] == 1


def test_jobs_of_a_worker_on_another_host_are_reclaimed_when_its_heartbeat_expires(project):
    """A worker elsewhere took a job and vanished: once its heartbeat expires, this supervisor runs the job."""
    job_id = project.submit("sleep", seconds=0.01, tag="stranded")
    broker = project.client.broker
    broker.register_worker("elsewhere-1", 0.5, {"host": "elsewhere", "pid": 1})
    [taken] = broker.fetch("elsewhere-1", ["default"])
    assert taken is not None and taken.id == job_id
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=20, what="the stranded job to run")
    info = project.job(job_id)
    assert info["crashes"] == 1 and "heartbeat" in info["last_crash"]
    assert project.tags_run() == ["stranded"]


def test_a_command_job_dies_with_its_worker(project):
    (project.root / "jobs" / "long-cmd.yaml").write_text(
        "name: long-cmd\nqueue: default\ncommand: [" + repr(sys.executable) +
        ", -c, 'import time, sys; print(flush=True); time.sleep(60)', 'batchrun-test-marker']\n")
    project.submit("long-cmd")
    sup = project.supervise("--workers", "1")

    def command_process():
        return [p for p in psutil.process_iter(["cmdline"]) if "batchrun-test-marker" in (p.info["cmdline"] or [])
                and p.pid != sup.pid]

    cmd = wait_for(command_process, what="the command to start")[0]
    worker = cmd.parent()
    worker.kill()
    cmd.wait(timeout=10)
    assert not psutil.pid_exists(cmd.pid) or cmd.status() == psutil.STATUS_ZOMBIE


def test_a_nul_byte_in_a_command_parameter_fails_the_job_not_the_worker(project):
    job_id = project.submit("echo", word="a\x00b")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=30) == 0
    info = project.job(job_id)
    assert info["state"] == "failed" and "null byte" in info["error"] and info["crashes"] == 0
