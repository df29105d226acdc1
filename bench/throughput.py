"""Enqueue and drain throughput of no-op jobs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import Project, wait_until


def enqueue_single(workdir: Path, url: str, jobs: int, **config: Any) -> float:
    """One Client.submit call a job; config goes to the project's settings (min_replicas, say)."""
    project = Project(workdir, url, **config)
    try:
        started = time.perf_counter()
        for _ in range(jobs):
            project.client.submit("noop")
        return jobs / (time.perf_counter() - started)
    finally:
        project.close()


def enqueue_bulk(workdir: Path, url: str, jobs: int) -> float:
    project = Project(workdir, url)
    try:
        started = time.perf_counter()
        project.client.submit_many("noop", [{}] * jobs)
        return jobs / (time.perf_counter() - started)
    finally:
        project.close()


def drain_queued(project: Project, ids: list[str], workers: int) -> tuple[float, list[float]]:
    """Run `supervise --until-empty` over jobs already queued: its start (unix time) and the jobs' finish
    times, sorted. Every job must finish."""
    started = time.time()
    proc = project.supervise("--workers", str(workers), "--until-empty")
    wait_until(lambda: proc.poll() is not None, timeout_s=600, poll_s=0.05)
    done = project.finished_times(ids)
    assert len(done) == len(ids), f"only {len(done)} of {len(ids)} jobs finished"
    return started, done


def drain(workdir: Path, url: str, jobs: int, workers: int) -> dict[str, float]:
    """jobs/s from supervisor start to the last job finished, and steady state (10th to 90th percentile)."""
    project = Project(workdir, url)
    try:
        ids = project.client.submit_many("noop", [{}] * jobs)
        started, done = drain_queued(project, ids, workers)
        lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
        return {"total": jobs / (done[-1] - started), "steady": (len(done) * 0.8) / max(hi - lo, 1e-9)}
    finally:
        project.close()
