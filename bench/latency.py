"""Latency with idle workers: from submit to start, and from a delayed job's due time to start."""
from __future__ import annotations

import time
from pathlib import Path

from bench.harness import Project, percentile, wait_until


def submit_to_start(workdir: Path, url: str, samples: int, workers: int) -> dict[str, float]:
    project = Project(workdir, url)
    try:
        project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        delays = []
        for _ in range(samples):
            job_id = project.client.submit("stamp", sent=time.time())
            info = wait_until(lambda: _finished(project, job_id), timeout_s=30, poll_s=0.001)
            delays.append(info["result"])
            time.sleep(0.005)  # let the workers go idle again: this figure is about idle workers
        return {"p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}
    finally:
        project.close()


def due_to_start(workdir: Path, url: str, samples: int, workers: int, delay_s: float = 0.3) -> dict[str, float]:
    """Delayed jobs are moved to their queue by a supervisor's promoter; `stamp` measures from the due time."""
    project = Project(workdir, url)
    try:
        project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        delays = []
        for _ in range(samples):
            due = time.time() + delay_s
            job_id = project.client.submit_params("stamp", {"sent": due}, at=due)
            info = wait_until(lambda: _finished(project, job_id), timeout_s=30, poll_s=0.005)
            delays.append(info["result"])
        return {"p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}
    finally:
        project.close()


def _finished(project: Project, job_id: str) -> dict | None:
    info = project.client.job(job_id)
    return info if info["state"] == "succeeded" else None
