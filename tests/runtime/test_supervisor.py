"""The supervisor's lifecycle: priorities, stopping, draining for cron, refusing to start on bad input."""
from __future__ import annotations

import signal

import orjson
import psutil
import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(90)


def test_higher_priority_jobs_start_first(project):
    for i in range(3):
        project.submit("sleep-low", seconds=0.01, tag=f"low{i}")
    for i in range(3):
        project.submit("sleep", seconds=0.01, tag=f"default{i}")
    for i in range(3):
        project.submit("sleep-high", seconds=0.01, tag=f"high{i}")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=30) == 0
    assert project.tags_run() == [f"{q}{i}" for q in ("high", "default", "low") for i in range(3)]


def test_idle_worker_starts_a_new_job_within_milliseconds(project):
    project.supervise("--workers", "1")
    wait_for(lambda: any(c["cmd"] == "blpop" for c in project.redis.client_list()),
             what="the idle worker to block on the wake list")
    job_id = project.submit("noop")
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=5, what="the job to run")
    info = project.job(job_id)
    assert info["started_at"] - info["enqueued_at"] < 0.5


def test_sigterm_lets_running_jobs_finish_and_exits_zero(project):
    ids = [project.submit("sleep", seconds=1.0, tag=f"t{i}") for i in range(2)]
    queued = project.submit("sleep", seconds=0.01, tag="never")
    proc = project.supervise("--workers", "2")
    wait_for(lambda: len(project.runs()) == 2, what="both jobs to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert [project.state(j) for j in ids] == ["succeeded", "succeeded"]
    assert project.state(queued) == "queued", "no new job is taken after SIGTERM"
    assert project.processing_total() == 0
    assert project.client.status()["workers"] == []


def test_jobs_still_running_after_the_grace_period_are_put_back(make_project):
    project = make_project(grace_period="500ms")
    job_id = project.submit("sleep", seconds=30.0, tag="slow")
    proc = project.supervise("--workers", "1")
    wait_for(lambda: project.runs(), what="the job to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    info = project.job(job_id)
    assert info["state"] == "queued" and info["crashes"] == 0
    assert project.processing_total() == 0
    assert project.redis.lrange(project.keys.queue("default"), 0, -1) == [job_id.encode()]


def test_second_sigint_stops_at_once_and_puts_jobs_back(project):
    job_id = project.submit("sleep", seconds=30.0, tag="slow")
    proc = project.supervise("--workers", "1")
    wait_for(lambda: project.runs(), what="the job to start")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "SIGINT: stopping" in project.supervisor_log(), what="the first SIGINT to be handled")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert project.state(job_id) == "queued"
    assert project.processing_total() == 0


def test_until_empty_drains_the_queues_and_exits(project):
    ids = [project.submit("sleep", seconds=0.05, tag=f"d{i}") for i in range(10)]
    proc = project.supervise("--until-empty")
    assert proc.wait(timeout=30) == 0
    assert all(project.state(j) == "succeeded" for j in ids)
    assert sorted(project.tags_run()) == sorted(f"d{i}" for i in range(10))


def test_until_empty_with_nothing_queued_exits_at_once(project):
    proc = project.supervise("--until-empty")
    assert proc.wait(timeout=15) == 0


def test_a_second_copy_started_by_cron_does_not_double_the_work(project):
    ids = [project.submit("sleep", seconds=0.3, tag=f"c{i}") for i in range(6)]
    first = project.supervise("--until-empty")
    wait_for(lambda: project.runs(), what="the first supervisor to start jobs")
    second = project.cli("supervise", "--until-empty")
    assert second.returncode == 0
    assert "another supervisor" in second.stderr
    assert first.wait(timeout=30) == 0
    assert all(project.state(j) == "succeeded" for j in ids)
    assert len(project.tags_run()) == 6


def test_a_second_long_running_supervisor_is_refused(project):
    first = project.supervise("--workers", "1")
    wait_for(lambda: project.workers(), what="the first supervisor's worker")
    second = project.cli("supervise")
    assert second.returncode == 6
    assert "another supervisor" in second.stderr
    assert first.poll() is None


def test_supervisor_refuses_to_start_on_a_broken_job_file(project):
    (project.root / "jobs" / "broken.yaml").write_text("name: broken\nhandler: testjobs:noop\nparams:\n  n: {type: integer}\n")
    result = project.cli("supervise", "--until-empty")
    assert result.returncode == 3
    assert "broken.yaml:4" in result.stderr and "params.n.type" in result.stderr


def test_supervisor_halts_when_workers_cannot_boot(project):
    (project.root / "jobs" / "missing.yaml").write_text("name: missing\nhandler: no_such_module:run\n")
    proc = project.supervise("--workers", "1")
    assert proc.wait(timeout=30) == 7
    log = project.supervisor_log()
    assert "no_such_module" in log and "failed to boot" in log


def test_killed_worker_is_replaced(project):
    sup = project.supervise("--workers", "2")
    wait_for(lambda: len(psutil.Process(sup.pid).children()) == 2, what="two workers")
    wait_for(lambda: len(project.workers()) == 2, what="both workers to be ready")
    victim = psutil.Process(sup.pid).children()[0]
    victim.kill()
    line = wait_for(lambda: next((l for l in project.supervisor_log().splitlines()
                                  if f"(pid {victim.pid}) was killed by SIGKILL" in l), None),
                    what="the supervisor to log the kill")
    assert "while idle" in line and "out-of-memory killer" in line and "an operator" in line
    wait_for(lambda: len(psutil.Process(sup.pid).children()) == 2
             and victim.pid not in [c.pid for c in psutil.Process(sup.pid).children()],
             what="a replacement worker")


def test_json_logs_for_containers(project):
    project.submit("sleep", seconds=0.01, tag="j")
    proc = project.supervise("--workers", "1", "--until-empty", "--log-format", "json")
    assert proc.wait(timeout=30) == 0
    lines = [orjson.loads(line) for line in project.supervisor_log().splitlines()]
    assert {"ts", "level", "logger", "pid", "msg"} <= set(lines[0])
    assert any("queues are empty" in line["msg"] for line in lines)


def test_a_stopping_supervisor_waits_without_spinning(project):
    """While running jobs get their grace period, the loop sleeps until its next step instead of polling."""
    project.submit("sleep", seconds=30.0, tag="slow")
    proc = project.supervise("--workers", "1")
    wait_for(lambda: project.runs(), what="the job to start")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: stopping" in project.supervisor_log(), what="the stop to begin")
    busy = psutil.Process(proc.pid).cpu_percent(interval=2.0)
    assert busy < 25, f"the supervisor used {busy:.0f}% of a CPU during its grace period"
