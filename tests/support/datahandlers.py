"""Handlers for the data-job tests; copied into a project as `datajobs.py`."""
import os
import time
from pathlib import Path

import numpy  # noqa: F401  (imported with the module, as data handlers do, so its pools exist at boot)

import batchrun

HERE = Path(__file__).parent


def read_threads() -> dict:
    """The native pools this worker's numpy sees, read back with threadpoolctl."""
    from threadpoolctl import threadpool_info

    pools = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return {"blas": max(pools), "env": os.environ.get("OPENBLAS_NUM_THREADS")}


def steps(total: int, pause: float = 0.05) -> dict:
    """Adds up i*i for i < total one step at a time, checkpointing after each step."""
    state = batchrun.last_checkpoint() or {"next": 0, "sum": 0}
    with open(HERE / "steps.log", "a") as log:
        log.write(f"{batchrun.current_job().attempt} {state['next']}\n")
    for i in range(state["next"], total):
        state = {"next": i + 1, "sum": state["sum"] + i * i}
        batchrun.checkpoint(state)
        batchrun.progress(i + 1, total, f"step {i}")
        time.sleep(pause)
    return {"sum": state["sum"]}


def whoami(n: int = 1) -> dict:
    job = batchrun.current_job()
    return {"id": job.id, "name": job.name, "attempt": job.attempt, "params": job.params,
            "deadline": job.deadline}


def bad_input() -> list:
    """Each misuse raises, and the first checkpoint stays in place."""
    batchrun.checkpoint({"kept": True})
    errors = []
    for attempt in (lambda: batchrun.checkpoint({1, 2}), lambda: batchrun.checkpoint("x" * 200_000),
                    lambda: batchrun.progress(-1), lambda: batchrun.progress(5, 3)):
        try:
            attempt()
        except ValueError as exc:
            errors.append(str(exc))
    return [errors, batchrun.last_checkpoint()]


def preloaded_sum() -> dict:
    import bigdata

    return {"sum": float(bigdata.ARRAY[:10].sum()), "pid": os.getpid()}
