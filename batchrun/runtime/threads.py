"""Native thread pools capped per worker, so one worker per CPU never oversubscribes the machine.

numpy's BLAS, OpenMP, MKL, numexpr, polars and Rayon each start a pool as wide
as the machine, in every worker: 64 workers x 64 threads on a 64-core host.
The supervisor sets the usual variables to CPUs / workers in its own
environment before it preloads anything or forks, so every library starts its
pool at the cap wherever it is imported. A variable the user set wins. Pools
that already exist in a worker (from a preloaded module imported before the
variables could matter) are limited with threadpoolctl, when it is installed
(extra `data`), which also gives a job with `threads: N` its N threads while it
runs.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, ContextManager

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS")


@dataclass(frozen=True)
class ThreadCap:
    """threads None: libraries are left alone (threads_per_worker: 0)."""

    threads: int | None
    user_set: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """For `status`: the cap, and where it comes from."""
        if self.threads is None:
            return "not capped (threads_per_worker: 0)"
        if self.user_set:
            names = ", ".join(f"{k}={v}" for k, v in sorted(self.user_set.items()))
            return f"{self.threads} (set by the environment: {names})"
        return str(self.threads)


def available_cpus() -> int:
    """The CPUs this process may run on (respects container CPU sets). The standard library's
    sched_getaffinity is what psutil calls on Linux; asking it directly keeps psutil's import (about
    8 ms) off the supervisor's path to its first fork."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def plan(setting: int | None, workers: int, cpus: int, env: Mapping[str, str]) -> ThreadCap:
    """The cap from `threads_per_worker` (None: CPUs / workers, at least 1), and the variables the
    user set, which win over it."""
    if setting == 0:
        return ThreadCap(None)
    threads = setting if setting is not None else max(1, cpus // max(1, workers))
    return ThreadCap(threads, {name: env[name] for name in THREAD_VARIABLES if env.get(name, "").strip()})


def apply_to_environment(cap: ThreadCap, env: MutableMapping[str, str] | None = None) -> None:
    """Set the variables the user left unset; done before any preload and fork."""
    if cap.threads is None:
        return
    target = os.environ if env is None else env
    for name in THREAD_VARIABLES:
        if name not in cap.user_set:
            target[name] = str(cap.threads)


def limit_existing_pools(cap: ThreadCap) -> None:
    """In a freshly forked worker: pools created before the variables were set are brought to the cap."""
    if cap.threads is None or cap.user_set:
        return
    limits = _threadpool_limits()
    if limits is not None:
        limits(cap.threads)


def job_threads(threads: int | None) -> ContextManager[Any]:
    """A job's own `threads: N` while it runs; the worker's cap comes back afterwards."""
    limits = _threadpool_limits() if threads else None
    return limits(threads) if limits is not None else nullcontext()


def threadpoolctl_available() -> bool:
    return _threadpool_limits() is not None


def _threadpool_limits() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits

