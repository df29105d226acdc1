"""How fast a killed worker's or a killed supervisor's job runs again."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import psutil

from bench.harness import Project, wait_until


def _running(project: Project, job_id: str, attempt: int) -> dict | None:
    info = project.client.job(job_id)
    return info if info["state"] == "running" and info["attempts"] >= attempt else None


def worker_kill(workdir: Path, url: str) -> float:
    """Seconds from SIGKILL of the worker running a job to that job starting again."""
    project = Project(workdir, url)
    try:
        project.supervise("--workers", "2")
        job_id = project.client.submit("sleep", seconds=30.0)
        info = wait_until(lambda: _running(project, job_id, 1), timeout_s=30)
        worker = next(w for w in project.client.status()["workers"] if w["id"] == info["worker"])
        killed = time.time()
        os.kill(int(worker["heartbeat"]["pid"]), signal.SIGKILL)
        again = wait_until(lambda: _running(project, job_id, 2), timeout_s=30, poll_s=0.001)
        return again["started_at"] - killed
    finally:
        project.close()


def supervisor_kill(workdir: Path, url: str, ttl: str) -> float:
    """Seconds from SIGKILL of a supervisor and its workers to another supervisor restarting the job."""
    project = Project(workdir, url, heartbeat_ttl=ttl, heartbeat_interval="500ms")
    try:
        first = project.supervise("--workers", "1")
        job_id = project.client.submit("sleep", seconds=60.0)
        wait_until(lambda: _running(project, job_id, 1), timeout_s=30)
        killed = time.time()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        project.supervise("--workers", "1")
        again = wait_until(lambda: _running(project, job_id, 2), timeout_s=120, poll_s=0.005)
        return again["started_at"] - killed
    finally:
        project.close()


def drain_under_kills(workdir: Path, url: str, jobs: int, workers: int, kill_every_s: float = 0.5,
                      supervisor_kills: int = 2) -> dict[str, float]:
    """Throughput of short jobs (1-5 ms) undisturbed, then while a random worker is SIGKILLed every
    kill_every_s and the supervisor itself is SIGKILLed (and started again) `supervisor_kills` times.
    Every job must still finish: a lost job fails the figure."""
    calm = _drain_short_jobs(workdir, url, jobs, workers, kill_every_s=None, supervisor_kills=0)
    stormy = _drain_short_jobs(workdir, url, jobs, workers, kill_every_s=kill_every_s,
                               supervisor_kills=supervisor_kills)
    return {"undisturbed_per_s": calm["per_s"], "under_kills_per_s": stormy["per_s"],
            "ratio": stormy["per_s"] / calm["per_s"], "workers_killed": stormy["workers_killed"]}


def _drain_short_jobs(workdir: Path, url: str, jobs: int, workers: int, kill_every_s: float | None,
                      supervisor_kills: int) -> dict[str, float]:
    project = Project(workdir, url)
    rng = random.Random(jobs)
    queue = project.client.broker.keys.queue("default")
    redis = project.client.connection.client
    try:
        ids = project.client.submit_many("sleep", [{"seconds": rng.uniform(0.001, 0.005)} for _ in range(jobs)])
        started = time.time()
        supervisor = project.supervise("--workers", str(workers))
        killed, sup_killed, next_kill = 0, 0, time.monotonic() + (kill_every_s or 0)
        done: list[float] = []
        while len(done) < jobs:
            assert time.time() - started < 300, "jobs were lost: the drain never finished"
            time.sleep(0.02)
            waiting = redis.llen(queue)
            if waiting == 0:
                done = project.finished_times(ids)
            if kill_every_s is None or time.monotonic() < next_kill:
                continue
            next_kill += kill_every_s
            killed += _kill_random_worker(supervisor, rng)
            if sup_killed < supervisor_kills and waiting < jobs * (1 - (sup_killed + 1) / (supervisor_kills + 1)):
                supervisor.kill()
                supervisor.wait()
                supervisor = project.supervise("--workers", str(workers))
                sup_killed += 1
        return {"per_s": jobs / (done[-1] - started), "workers_killed": killed}
    finally:
        project.close()


def _kill_random_worker(supervisor: subprocess.Popen, rng: random.Random) -> int:
    try:
        children = psutil.Process(supervisor.pid).children()
    except psutil.Error:
        return 0
    if not children:
        return 0
    try:
        rng.choice(children).kill()
    except psutil.Error:
        return 0
    return 1
