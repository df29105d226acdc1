"""Enforces, from the supervisor, each running job's time limit, memory limit and cancellation.

It works from outside the worker so that it also stops code stuck in a C
extension or a system call: the worker first gets SIGUSR1, which raises
JobInterrupted in the handler (it may clean up), and SIGKILL after the grace
period if it is still on that job. A job over its memory limit is killed at
once, since waiting lets it grow further. `record` writes the outcome once the
supervisor has reaped the worker (see Supervisor.on_exit).
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from batchrun.definitions.durations import format_size
from batchrun.definitions.registry import Registry
from batchrun.errors import BatchrunError
from batchrun.runtime.childproc import signal_process
from batchrun.runtime.execute import kill_group
from batchrun.runtime.failures import attempt_failed
from batchrun.runtime.slots import Running, Slots
from batchrun.store.broker import Broker

if TYPE_CHECKING:
    import psutil

log = logging.getLogger("batchrun.supervisor")

TIMEOUT, MEMORY, CANCEL = "timeout", "memory", "cancel"


@dataclass
class Interrupt:
    job_id: str
    started: float
    reason: str
    error: str
    kill_at: float


class Watched(Protocol):
    pid: int
    slot: int
    killed_by_us: bool
    kill_counts_crash: bool
    interrupt: Interrupt | None


class Watchdog:
    def __init__(self, slots: Slots, grace_s: float) -> None:
        self.slots = slots
        self.grace_s = grace_s
        self.processes: dict[int, psutil.Process] = {}

    def check(self, children: Iterable[Watched], cancel_requests: Collection[str]) -> None:
        now = time.monotonic()
        for child in children:
            if child.interrupt is not None:
                self._follow_up(child, now)
                continue
            running = self.slots[child.slot].current()
            if running is not None:
                self._check_running(child, running, now, cancel_requests)

    def running_jobs(self, children: Iterable[Watched]) -> set[str]:
        jobs = (self.slots[child.slot].current() for child in children)
        return {running.job_id for running in jobs if running is not None}

    def cancel_requests(self, broker: Broker, children: Iterable[Watched]) -> set[str]:
        """Jobs someone asked to cancel. Requests for jobs none of our workers runs are dropped once
        the job runs nowhere (it ended first); another supervisor may be running the rest."""
        requests = set(broker.cancel_requests())
        stale = sorted(requests - self.running_jobs(children))
        if stale:
            broker.drop_stale_cancel_requests(stale)
        return requests

    def record(self, broker: Broker, registry: Registry, worker_id: str, interrupt: Interrupt) -> None:
        """Called once the interrupted worker is reaped. Over time or memory, the attempt failed and
        retries apply; a cancelled job is ended by the reclaim that follows (its record carries the request)."""
        if interrupt.reason == CANCEL:
            return
        try:
            job, failures = broker.job_fields(interrupt.job_id, "job", "failures")
            failure = attempt_failed(registry.get(job or ""), _count(failures), interrupt.error)
            broker.fail(worker_id, interrupt.job_id, failure)
        except BatchrunError as exc:
            log.error("cannot record that job %s %s; it is put back instead: %s", interrupt.job_id, interrupt.error, exc)

    def forget(self, pid: int) -> None:
        self.processes.pop(pid, None)

    def _check_running(self, child: Watched, running: Running, now: float, cancel_requests: Collection[str]) -> None:
        if running.deadline is not None and now >= running.deadline:
            limit = running.deadline - running.started
            self._interrupt(child, running, TIMEOUT, f"timed out after {limit:g}s (timeout)", now)
        elif running.job_id in cancel_requests:
            self._interrupt(child, running, CANCEL, "cancelled while running", now)
        elif running.memory_limit is not None:
            used = self._resident(child.pid)
            if used > running.memory_limit:
                error = (f"memory limit exceeded: {format_size(used)} resident, "
                         f"limit {format_size(running.memory_limit)} (memory_limit)")
                self._interrupt(child, running, MEMORY, error, now, grace_s=0.0)

    def _interrupt(self, child: Watched, running: Running, reason: str, error: str, now: float,
                   grace_s: float | None = None) -> None:
        grace = self.grace_s if grace_s is None else grace_s
        log.warning("job %s on worker pid %d: %s; stopping the worker", running.job_id, child.pid, error)
        self.slots[child.slot].request_interrupt(running.job_id, running.started)
        child.interrupt = Interrupt(running.job_id, running.started, reason, error, now + grace)
        if grace > 0:
            signal_process(child.pid, signal.SIGUSR1)
        else:
            kill_worker(child)

    def _follow_up(self, child: Watched, now: float) -> None:
        """After the grace period: kill a worker still on the job; forgive one that has moved on."""
        interrupt = child.interrupt
        assert interrupt is not None
        if child.killed_by_us or now < interrupt.kill_at:
            return
        running = self.slots[child.slot].current()
        if running is not None and (running.job_id, running.started) == (interrupt.job_id, interrupt.started):
            log.warning("job %s did not stop within %gs; killing its worker (pid %d)",
                        interrupt.job_id, self.grace_s, child.pid)
            kill_worker(child)
        else:
            child.interrupt = None
            self.slots[child.slot].request_interrupt("", 0.0)

    def _resident(self, pid: int) -> int:
        """Resident memory of the worker and everything it started (command jobs)."""
        import psutil  # imported on the first memory check, not at start: see kill_worker

        try:
            process = self.processes.get(pid) or self.processes.setdefault(pid, psutil.Process(pid))
            total = process.memory_info().rss
            for sub in process.children(recursive=True):
                try:
                    total += sub.memory_info().rss
                except psutil.Error:
                    pass
            return total
        except psutil.Error:
            return 0


def kill_worker(child: Watched) -> None:
    """The worker and the process groups of its command jobs (which lead their own sessions)."""
    import psutil  # on first use: a starting supervisor forks its workers before it needs psutil

    child.killed_by_us = True
    child.kill_counts_crash = False
    try:
        commands = [p.pid for p in psutil.Process(child.pid).children() if os.getpgid(p.pid) == p.pid]
    except (psutil.Error, ProcessLookupError):
        commands = []
    signal_process(child.pid, signal.SIGKILL)
    for pgid in commands:
        kill_group(pgid)


def _count(text: str | None) -> int:
    """A counter from a job record, which may have been tampered with."""
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0
