"""How fast a killed worker's or a killed supervisor's job runs again."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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
