"""Latency with idle workers: from submit to start, and from a delayed job's due time to start."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import Project, percentile, wait_until


@contextmanager
def _idle_workers(workdir: Path, url: str, workers: int) -> Iterator[Project]:
    project = Project(workdir, url)
    try:
        project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        yield project
    finally:
        project.close()


def submit_to_start(workdir: Path, url: str, samples: int, workers: int) -> dict[str, float]:
    with _idle_workers(workdir, url, workers) as project:
        delays = []
        for _ in range(samples):
            job_id = project.client.submit("stamp", sent=time.time())
            delays.append(_result(project, job_id, poll_s=0.001))
            time.sleep(0.005)  # let the workers go idle again: this figure is about idle workers
        return _percentiles_ms(delays)


def due_to_start(workdir: Path, url: str, samples: int, workers: int, delay_s: float = 0.3) -> dict[str, float]:
    """Delayed jobs are moved to their queue by a supervisor's promoter; `stamp` measures from the due time."""
    with _idle_workers(workdir, url, workers) as project:
        delays = []
        for _ in range(samples):
            due = time.time() + delay_s
            job_id = project.client.submit_params("stamp", {"sent": due}, at=due)
            delays.append(_result(project, job_id, poll_s=0.005))
        return _percentiles_ms(delays)


def _result(project: Project, job_id: str, poll_s: float) -> float:
    info = wait_until(lambda: _finished(project, job_id), timeout_s=30, poll_s=poll_s)
    return info["result"]


def _percentiles_ms(delays: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}


def _finished(project: Project, job_id: str) -> dict | None:
    info = project.client.job(job_id)
    return info if info["state"] == "succeeded" else None
