"""The supervisor vouches for its own workers in Redis, so liveness never needs a worker's GIL.

A worker's heartbeat key says "this worker is alive, leave its jobs alone".
The supervisor knows which of its children are alive without their help: it
forked them and reaps them. So it renews the heartbeats of all its booted
children in one script call per heartbeat interval, and a job whose C code
holds the GIL for an hour keeps its heartbeat all the same. What catches what:

* a dead worker: its supervisor reaps it and puts its jobs back at once;
* a dead supervisor (or host): its workers die with it (parent-death signal),
  nobody vouches for them, and any other supervisor reclaims their jobs once
  the heartbeats expire, within the TTL;
* a hung job (alive, busy, never ending): only its `timeout` ends it;
* a frozen worker (SIGSTOP, SIGTSTP, a debugger): alive but making no
  progress; it is vouched for until it has been stopped for a whole TTL,
  then killed and its jobs put back, not counted as a crash;
* a supervisor that cannot reach Redis: when its next renewal would come too
  late, it kills its workers, since other supervisors are about to run their
  jobs; those jobs are put back when Redis answers again;
* a heartbeat found expired anyway (this supervisor was frozen, or Redis lost
  the key): the worker was presumed dead and its jobs may run elsewhere, so it
  is killed; its late acknowledgements are refused by the ack script.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from batchrun.errors import BatchrunError
from batchrun.runtime.slots import Slots
from batchrun.store.broker import Broker

log = logging.getLogger("batchrun.supervisor")

FROZEN_STATES = ("stopped", "tracing-stop")  # psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP


class Vouched(Protocol):
    pid: int
    worker_id: str
    slot: int
    started: float
    killed_by_us: bool
    vouched_at: float
    stopped_since: float | None


@dataclass(frozen=True)
class Verdict:
    """A worker its supervisor must stop, and why (for the log)."""

    child: Vouched
    reason: str


class Liveness:
    def __init__(self, broker: Broker, slots: Slots, interval_s: float, ttl_s: float) -> None:
        self.broker = broker
        self.slots = slots
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.next_beat = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_beat

    def beat(self, children: Iterable[Vouched], now: float) -> tuple[list[Verdict], BatchrunError | None]:
        """Renew the heartbeats of booted, running children. Returns the children to stop, and the
        error if Redis could not be reached (who must stop is judged all the same)."""
        self.next_beat = now + self.interval_s
        verdicts: list[Verdict] = []
        vouched: list[Vouched] = []
        for child in children:
            if child.killed_by_us or not self.slots[child.slot].ready:
                continue
            frozen = self._frozen_too_long(child, now)
            if frozen:
                verdicts.append(Verdict(child, frozen))
            else:
                vouched.append(child)
        try:
            alive = self.broker.beat([c.worker_id for c in vouched], self.ttl_s)
        except BatchrunError as exc:
            return verdicts + self._unrenewable(vouched, now), exc
        for child, ok in zip(vouched, alive):
            if ok:
                child.vouched_at = now
            else:
                verdicts.append(Verdict(child, "its heartbeat had expired, so it was presumed dead and its jobs "
                                               "may already run elsewhere"))
        return verdicts, None

    def _frozen_too_long(self, child: Vouched, now: float) -> str:
        if _state(child.pid) not in FROZEN_STATES:
            child.stopped_since = None
            return ""
        if child.stopped_since is None:
            child.stopped_since = now
        stopped = now - child.stopped_since
        if stopped < self.ttl_s:
            return ""
        return f"it has been stopped (SIGSTOP, SIGTSTP or a debugger) for {stopped:.1f}s, longer than heartbeat_ttl"

    def _unrenewable(self, children: list[Vouched], now: float) -> list[Verdict]:
        """Children whose heartbeat would expire before the next try: others may run their jobs then."""
        return [Verdict(c, f"its heartbeat could not be renewed for {now - c.vouched_at:.1f}s and expires "
                           "before the next try; other supervisors may run its jobs")
                for c in children if now - c.vouched_at + self.interval_s >= self.ttl_s]


def _state(pid: int) -> str:
    import psutil  # psutil is imported on first use: a supervisor forks its workers before it needs it

    try:
        return psutil.Process(pid).status()
    except psutil.Error:
        return ""


def process_gone(pid: int, started_at: float, wait_s: float) -> bool:
    """Whether the worker process that started at `started_at` has exited (a new process that reused
    its pid does not count). A dying process gets `wait_s` to finish."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.create_time() > started_at + 1.0:
            return True
        process.wait(wait_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        log.warning("worker pid %d is still running; its jobs wait for its heartbeat to expire", pid)
        return False
    return True
