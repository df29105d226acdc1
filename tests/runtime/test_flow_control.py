"""Pause and resume, unique jobs and concurrency limits, under real supervisors and CLI processes."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from batchrun.errors import SubmitError
from tests.support.project import wait_for


def _define(project, name: str, extra: str) -> None:
    (project.root / "jobs" / f"{name}.yaml").write_text(
        f"name: {name}\nhandler: testjobs:sleep\nqueue: default\n"
        "params:\n  seconds: {type: float, default: 0}\n  tag: {type: str, default: ''}\n" + extra)


# --- pause and resume --------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_paused_queue_stays_paused_across_a_restart_and_runs_after_resume(project):
    paused = project.cli("pause", "default")
    assert paused.returncode == 0, paused.stderr
    held = project.submit("sleep", seconds=0, tag="held")
    sup = project.supervise("--workers", "1")
    first = project.submit("sleep-high", seconds=0, tag="high-1")
    assert project.client.wait([first], 20) == {first: "succeeded"}
    assert project.state(held) == "queued"
    assert "paused" in project.cli("status").stdout
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=20) == 0
    project.supervise("--workers", "1")
    second = project.submit("sleep-high", seconds=0, tag="high-2")
    assert project.client.wait([second], 20) == {second: "succeeded"}
    assert project.state(held) == "queued"
    assert project.client.status()["paused"] == ["default"]
    resumed = project.cli("resume", "default")
    assert resumed.returncode == 0, resumed.stderr
    assert project.client.wait([held], 20) == {held: "succeeded"}
    assert project.client.status()["paused"] == []


@pytest.mark.timeout(60)
def test_pausing_lets_the_running_job_finish(project):
    project.supervise("--workers", "1")
    running = project.submit("sleep", seconds=1, tag="running")
    wait_for(lambda: project.state(running) == "running", what="the job to start")
    project.client.pause(["default"])
    waiting = project.submit("sleep", seconds=0, tag="waiting")
    assert project.client.wait([running], 20) == {running: "succeeded"}
    assert project.state(waiting) == "queued"


@pytest.mark.timeout(30)
def test_pause_of_an_unconfigured_queue_exits_2_and_changes_nothing(project):
    result = project.cli("pause", "default", "nope")
    assert result.returncode == 2
    assert "unknown queue 'nope'" in result.stderr
    assert project.client.status()["paused"] == []


@pytest.mark.timeout(60)
def test_until_empty_leaves_paused_queues_for_later(project):
    project.client.pause(["low"])
    later = project.submit("sleep-low", seconds=0, tag="later")
    now = project.submit("sleep", seconds=0, tag="now")
    sup = project.supervise("--workers", "1", "--until-empty")
    assert sup.wait(timeout=30) == 0
    assert (project.state(now), project.state(later)) == ("succeeded", "queued")


# --- unique jobs -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_racing_unique_submits_get_one_job(project):
    _define(project, "once", "unique: true\n")
    cmd = [sys.executable, "-m", "batchrun", "submit", "once", "-p", "tag=x"]
    procs = [subprocess.Popen(cmd, cwd=project.root, env=project.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6
    ids = {out.strip() for out, _ in outputs}
    assert len(ids) == 1, outputs
    assert sum("already queued" in err for _, err in outputs) == 5
    other = project.client.submit_checked("once", {"tag": "y"})
    assert other[1] and other[0] not in ids
    assert project.client.submit_checked("once", {"tag": "x", "seconds": 0})[0] in ids


@pytest.mark.timeout(60)
def test_a_unique_job_that_ended_frees_its_params(project):
    _define(project, "once", "unique: true\n")
    first = project.submit("once", tag="x")
    project.supervise("--workers", "1")
    assert project.client.wait([first], 20) == {first: "succeeded"}
    second, created = project.client.submit_checked("once", {"tag": "x"})
    assert created and second != first
    delayed, created = project.client.submit_checked("once", {"tag": "z"}, delay=3600)
    assert created and project.client.submit_checked("once", {"tag": "z"}) == (delayed, False)


# --- concurrency limits ------------------------------------------------------


def _never_overlap(project, prefix: str, killed_first: bool = False) -> None:
    """Runs of the limited job (tags starting with `prefix`) never overlap; with killed_first, the first
    run was killed (it has a start and no end)."""
    rows = [line.split()[:2] for line in (project.root / "runs.log").read_text().splitlines()]
    rows = [(event, tag) for event, tag in rows if tag.startswith(prefix)][1 if killed_first else 0:]
    running = None
    for event, tag in rows:
        if event == "start":
            assert running is None, rows
            running = tag
        else:
            assert running == tag, rows
            running = None


@pytest.mark.timeout(60)
def test_four_limited_jobs_never_overlap_and_waiting_ones_hold_no_worker(project):
    _define(project, "single", "concurrency: 1\n")
    ids = [project.submit("single", seconds=0.6, tag=f"s{i}") for i in range(4)]
    project.supervise("--workers", "3")
    wait_for(lambda: project.redis.llen(project.keys.waiting("single")) == 3, what="three parked jobs")
    assert project.client.status()["waiting"]["single"] in (2, 3)
    assert re.search(r"waiting for a concurrency slot: single [1-3]\b", project.cli("status").stdout)
    free = project.submit("sleep", seconds=0, tag="free")
    assert project.client.wait([free], 20) == {free: "succeeded"}
    assert project.client.wait(ids, 30) == {i: "succeeded" for i in ids}
    _never_overlap(project, "s")
    assert [t for t in project.tags_run() if t != "free"] == ["s0", "s1", "s2", "s3"]
    assert project.redis.scard(project.keys.active("single")) == 0


@pytest.mark.timeout(60)
def test_a_slot_held_by_a_killed_worker_is_freed_when_its_jobs_are_reclaimed(project):
    _define(project, "single", "concurrency: 1\n")
    ids = [project.submit("single", seconds=1, tag=f"s{i}") for i in range(3)]
    project.supervise("--workers", "2")
    wait_for(lambda: project.runs(), what="the first job to start")
    _tag, pid = project.runs()[0]
    os.kill(pid, signal.SIGKILL)
    assert project.client.wait(ids, 40) == {i: "succeeded" for i in ids}
    assert sum(project.job(i)["crashes"] for i in ids) == 1
    assert len(project.tags_run("end")) == 3
    _never_overlap(project, "s", killed_first=True)
    assert project.redis.scard(project.keys.active("single")) == 0
    assert project.redis.llen(project.keys.waiting("single")) == 0


@pytest.mark.timeout(60)
def test_a_mapped_limited_job_keeps_its_limit_and_a_unique_one_is_refused(project):
    _define(project, "single", "concurrency: 1\n")
    _define(project, "only", "unique: true\n")
    batch = project.client.map("single", [{"seconds": 0.2, "tag": f"m{i}"} for i in range(4)])
    project.supervise("--workers", "3")
    assert batch.wait(timeout_s=30)["counts"]["succeeded"] == 4
    _never_overlap(project, "m")
    with pytest.raises(SubmitError, match="'only' is unique: submit it one input at a time"):
        project.client.map("only", [{"tag": "a"}, {"tag": "a"}])
    assert project.cli("batches", "--json").stdout.count('"job":"only"') == 0, "nothing was written"
