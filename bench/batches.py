"""Batches: how fast `map` queues inputs, and what a batch adds to the drain of the same jobs."""
from __future__ import annotations

import time
from pathlib import Path

from bench.harness import Project
from bench.throughput import drain_queued
from batchrun.ids import batch_job_id


def map_submit(workdir: Path, url: str, inputs: int) -> float:
    """Inputs/s of client.map: validate, spool, create the batch, queue every job."""
    project = Project(workdir, url)
    try:
        params = [{"loops": i} for i in range(inputs)]
        started = time.perf_counter()
        project.client.map("burn", params)
        return inputs / (time.perf_counter() - started)
    finally:
        project.close()


def drain_cost(workdir: Path, url: str, jobs: int, workers: int, rounds: int = 2) -> dict[str, float]:
    """The drain of `jobs` no-op jobs queued as one batch against the same jobs queued plainly, each from
    supervisor start to the last job finished; cost_ratio is the batch's time over the plain one's.
    The two alternate `rounds` times and the best of each counts, so a burst of noise on this shared
    machine does not land on one side only."""
    plain, batched = 0.0, 0.0
    for _ in range(rounds):
        plain = max(plain, _drain(workdir, url, jobs, workers, batch=False))
        batched = max(batched, _drain(workdir, url, jobs, workers, batch=True))
    return {"plain_per_s": plain, "batch_per_s": batched, "cost_ratio": plain / batched}


def _drain(workdir: Path, url: str, jobs: int, workers: int, batch: bool) -> float:
    project = Project(workdir, url)
    try:
        if batch:
            batch_id = project.client.map("noop", [{}] * jobs).id
            ids = [batch_job_id(batch_id, i) for i in range(jobs)]
        else:
            ids = project.client.submit_many("noop", [{}] * jobs)
        started, done = drain_queued(project, ids, workers)
        if batch:
            assert project.client.batch(batch_id).progress()["counts"]["succeeded"] == jobs
        return jobs / (done[-1] - started)
    finally:
        project.close()
