"""The supervisor: forks one worker per CPU, reaps and replaces them, reclaims their jobs, stops cleanly.

Modelled on gunicorn's arbiter. Signal handlers only record the signal (inbox.py,
whose wake-up pipe interrupts the loop's sleep); the loop does all the work,
one short method per verb: handle signals, reap the dead, reclaim their jobs,
vouch for the living (liveness.py), start the missing. Workers are reaped by
pid, never with waitpid(-1), so other children of this process are left alone.

Restarts: a worker that dies before it is ready (booted and registered) is a
crash loop, so its place waits with a backoff, and repeated boot failures halt
the supervisor. A worker that was ready and then died (killed from outside,
recycled, or taken down by a job) is replaced at once; a job that keeps
killing its workers is dead-lettered by the crash limit instead.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import secrets
import time

from collections.abc import Callable
from dataclasses import dataclass, field

from batchrun.definitions.config import Settings
from batchrun.definitions.registry import Registry
from batchrun.errors import BatchrunError, ExitCode, RedisUnavailable
from batchrun.runtime.childproc import signal_process
from batchrun.runtime.exits import describe_exit
from batchrun.runtime.inbox import SignalInbox
from batchrun.runtime.liveness import Liveness, process_gone
from batchrun.runtime.scheduler import Scheduler
from batchrun.runtime.slots import Slots
from batchrun.runtime.threads import ThreadCap, available_cpus
from batchrun.runtime.sweep import ExpirySweep
from batchrun.runtime.watchdog import Interrupt, Watchdog, kill_worker
from batchrun.runtime.worker import Identity, WorkerExit
from batchrun.runtime.worker_process import child_main, fork_worker
from batchrun.store.broker import PROMOTE_CHUNK, Broker
from batchrun.store.connection import Connection, client_for
from batchrun.store.inspection import Inspector

log = logging.getLogger("batchrun.supervisor")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
UNTIL_EMPTY_TICK_S = 0.1
MAX_BACKOFF_S = 10.0
BOOT_FAILURE_LIMIT = 3
GIVE_UP_RECLAIM_S = 10.0
ORPHAN_EXIT_WAIT_S = 2.0


@dataclass
class Child:
    pid: int
    worker_id: str
    slot: int
    started: float
    killed_by_us: bool = False
    kill_counts_crash: bool = False
    interrupt: Interrupt | None = None
    vouched_at: float = 0.0
    stopped_since: float | None = None


@dataclass
class Place:
    """One place for a worker; it remembers how often its workers died before they were ready, for backoff."""

    streak: int = 0
    start_after: float = 0.0


@dataclass
class Stop:
    deadline: float
    immediate: bool = False


@dataclass
class Supervisor:
    settings: Settings
    registry: Registry
    connection: Connection
    workers: int
    until_empty: bool = False
    release_in_child: list[Callable[[], None]] = field(default_factory=list)
    previous_id: str | None = None
    thread_cap: ThreadCap = field(default_factory=lambda: ThreadCap(None))

    def __post_init__(self) -> None:
        self.host = os.environ.get("BATCHRUN_HOST_NAME") or socket.gethostname()
        self.id = f"{self.host}-{os.getpid()}-{secrets.token_hex(3)}"
        self.broker = Broker.for_settings(self.connection.client, self.settings)
        self.inspector = Inspector(self.connection.client, self.settings.namespace)
        self.children: dict[int, Child] = {}
        self.places = [Place() for _ in range(self.workers)]
        self.inbox = SignalInbox(HANDLED_SIGNALS)
        self.stop: Stop | None = None
        self.exit_code = ExitCode.OK
        self.boot_failures = 0
        self.unreclaimed: dict[str, tuple[bool, str]] = {}
        self.sweep = ExpirySweep(self.broker, self.settings.heartbeat_interval_s, self.settings.heartbeat_ttl_s)
        self.redis_trouble_until = 0.0
        self.job_slots = Slots(self.workers)
        self.watchdog = Watchdog(self.job_slots, self.settings.timeout_grace_s)
        beats = client_for(self.connection.url, socket_timeout_s=self.settings.heartbeat_interval_s, retries=1)
        self.liveness = Liveness(Broker.for_settings(beats, self.settings), self.job_slots,
                                 self.settings.heartbeat_interval_s, self.settings.heartbeat_ttl_s)
        self.cancel_requests: set[str] = set()
        self.next_promote = 0.0
        self.scheduler = Scheduler(self.broker, self.inspector, self.registry)
        self.last_tick = 0.0  # time.monotonic() of the last tick; /healthz reads it from another thread
        self.release_in_child.append(self.inbox.close)

    def run(self) -> int:
        log.info("supervisor %s starting %d workers on queues %s", self.id, self.workers, ", ".join(self.settings.queues))
        self.inbox.install()
        self.adopt_orphans()
        if not self.until_empty:
            self.spawn_missing()  # before the first tick: its housekeeping then runs while the workers boot
        try:
            while not self._finished():
                self.tick()
                self._sleep()
        finally:
            self.inbox.restore()
            self.inbox.close()
        log.info("supervisor %s stopped", self.id)
        return self.exit_code

    def tick(self) -> None:
        self.last_tick = time.monotonic()
        self.handle_signals()
        self.reap()
        self.reclaim()
        self.vouch()
        self.watchdog.check(self.children.values(), self.cancel_requests)
        if self.stop is not None:
            self.advance_stop()
            return
        self.check_server()
        self.scheduler.step()
        self.promote()
        self.check_until_empty()
        if self.stop is None:
            self.spawn_missing()

    def _finished(self) -> bool:
        """Done once every worker is reaped and its jobs put back; if Redis stays away, the
        heartbeats expire and any later supervisor reclaims them."""
        if self.stop is None or self.children:
            return False
        return not self.unreclaimed or time.monotonic() > self.stop.deadline + GIVE_UP_RECLAIM_S

    # --- signals -----------------------------------------------------------

    def _sleep(self) -> None:
        """Until the next step due. While stopping, promote and the scheduler no longer run (their due
        times stay in the past), so only the heartbeats and the sweep count."""
        now = time.monotonic()
        due = [self.liveness.next_beat - now, self.sweep.next_at - now]
        if self.stop is None:
            due += [self.next_promote - now, self.scheduler.seconds_until_due()]
        timeout = UNTIL_EMPTY_TICK_S if self.until_empty or self.stop else self.settings.promote_interval_s
        self.inbox.wait(max(0.0, min(timeout, *due)))

    def handle_signals(self) -> None:
        for signum in self.inbox.take():
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.request_stop(signal.Signals(signum).name)

    def request_stop(self, why: str) -> None:
        """First request: stop fetching and let jobs finish for the grace period. Second: stop at once."""
        if self.stop is None:
            log.info("%s: stopping; running jobs get %.1fs to finish", why, self.settings.grace_period_s)
            self.stop = Stop(deadline=time.monotonic() + self.settings.grace_period_s)
            self._signal_children(signal.SIGTERM)
            self._wake_idle_workers()
        elif not self.stop.immediate:
            log.warning("%s again: stopping at once; running jobs are put back", why)
            self.stop.immediate = True
            self._kill_children()

    def _signal_children(self, signum: int) -> None:
        for child in self.children.values():
            signal_process(child.pid, signum)

    def _kill_children(self) -> None:
        for child in self.children.values():
            child.killed_by_us = True
        self._signal_children(signal.SIGKILL)

    def _wake_idle_workers(self) -> None:
        """Idle workers block on the wake list; a token each lets them see the stop at once."""
        try:
            self.broker.wake(len(self.children))
        except BatchrunError as exc:
            log.debug("could not wake idle workers: %s", exc)

    def advance_stop(self) -> None:
        assert self.stop is not None
        if self.children and not self.stop.immediate and time.monotonic() >= self.stop.deadline:
            log.warning("grace period over: killing %d workers and putting their jobs back", len(self.children))
            self.stop.immediate = True
            self._kill_children()

    # --- reaping and reclaiming --------------------------------------------

    def reap(self) -> None:
        for pid, child in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self.children[pid]
                self.on_exit(child, os.waitstatus_to_exitcode(status))

    def on_exit(self, child: Child, code: int) -> None:
        reason = describe_exit(child, code, self.job_slots[child.slot].current())
        self.watchdog.forget(child.pid)
        if child.interrupt is not None:
            crashed = False
            self.watchdog.record(self.broker, self.registry, child.worker_id, child.interrupt)
        elif child.killed_by_us:
            crashed = child.kill_counts_crash
        else:
            crashed = code not in (WorkerExit.OK, WorkerExit.FENCED, WorkerExit.BOOT_FAILED,
                                   WorkerExit.RECYCLED, WorkerExit.INTERRUPTED)
        (log.warning if crashed else log.info)("%s", reason)
        self.unreclaimed[child.worker_id] = (crashed, reason)
        if code == WorkerExit.BOOT_FAILED:
            self._boot_failed()
        else:
            self.boot_failures = 0
        self._schedule_restart(child, code)

    def _boot_failed(self) -> None:
        self.boot_failures += 1
        if self.boot_failures >= BOOT_FAILURE_LIMIT and self.stop is None:
            log.critical("workers failed to boot %d times in a row; halting (see the errors above)", self.boot_failures)
            self.exit_code = ExitCode.WORKER_BOOT
            self.request_stop("worker boot failures")

    def _schedule_restart(self, child: Child, code: int) -> None:
        place = self.places[child.slot]
        place.streak = 0 if self.job_slots[child.slot].ready else place.streak + 1
        delay = 0.0 if place.streak == 0 else min(MAX_BACKOFF_S, 0.1 * 2 ** (place.streak - 1))
        place.start_after = time.monotonic() + delay

    def reclaim(self) -> None:
        """Put back the jobs of our dead children at once, and those of any worker whose heartbeat expired."""
        for worker_id, (crashed, reason) in list(self.unreclaimed.items()):
            if self._reclaim_one(worker_id, crashed, reason, only_if_expired=False):
                del self.unreclaimed[worker_id]
        if self.sweep.due(time.monotonic()):
            self.reclaim_expired()

    def reclaim_expired(self) -> None:
        """Reclaim workers whose heartbeat expired (the sweep is timed to the next expiry, see sweep.py).
        Our own children are left to vouch(), which stops any of them whose heartbeat is gone; their jobs
        come back when they are reaped."""
        try:
            expired = self.sweep.expired(time.monotonic())
        except BatchrunError as exc:
            self._redis_trouble("cannot look for expired workers", exc)
            return
        own = {child.worker_id for child in self.children.values()}
        for worker_id in expired:
            if worker_id not in own:
                reason = f"heartbeat of worker {worker_id} expired"
                self._reclaim_one(worker_id, not self._redis_troubled(), reason, only_if_expired=True)

    def vouch(self) -> None:
        """Renew our ready children's heartbeats (see liveness.py), and stop those that must not go on."""
        now = time.monotonic()
        if not self.liveness.due(now):
            return
        verdicts, error = self.liveness.beat(list(self.children.values()), now)
        if error is not None:
            self._redis_trouble("cannot renew the workers' heartbeats", error)
        for verdict in verdicts:
            log.warning("worker %s (pid %d): %s; killing it, its jobs are put back",
                        verdict.child.worker_id, verdict.child.pid, verdict.reason)
            kill_worker(verdict.child)

    def adopt_orphans(self) -> None:
        """The previous supervisor of this state folder is dead (its lock was free), and its workers died
        with it: put their jobs back now rather than when their heartbeats expire. Not counted as crashes."""
        if not self.previous_id:
            return
        try:
            workers = self.broker.workers_of(self.previous_id)
        except BatchrunError as exc:
            self._redis_trouble("cannot look for the previous supervisor's workers", exc)
            return
        for worker_id, pid, started_at in workers:
            if process_gone(pid, started_at, ORPHAN_EXIT_WAIT_S):
                self.unreclaimed[worker_id] = (False, f"its supervisor {self.previous_id} died")

    def _reclaim_one(self, worker_id: str, crashed: bool, reason: str, *, only_if_expired: bool) -> bool:
        try:
            counts = self.broker.reclaim(
                worker_id, count_crash=crashed, crash_limit=self.settings.crash_limit,
                reason=reason, only_if_expired=only_if_expired, fallback_queue=self.settings.queues[0],
            )
        except RedisUnavailable as exc:
            self._redis_trouble(f"cannot reclaim jobs of {worker_id} yet", exc)
            return False
        except BatchrunError as exc:
            log.error("reclaiming jobs of %s failed; its heartbeat will expire and it is retried then: %s",
                      worker_id, exc)
            return True
        if counts and any(counts):
            log.warning("reclaimed jobs of worker %s: %d requeued, %d dead-lettered", worker_id, *counts)
        return True

    def _redis_trouble(self, what: str, exc: Exception) -> None:
        """Remember the outage: heartbeats that expire during one are not the jobs' fault."""
        log.warning("%s: %s", what, exc)
        self.redis_trouble_until = time.monotonic() + self.settings.heartbeat_ttl_s

    def _redis_troubled(self) -> bool:
        return time.monotonic() < self.redis_trouble_until

    # --- schedules, cancellations and limits --------------------------------

    def promote(self) -> None:
        """Queue due delayed jobs and retries, and read cancel requests, every promote_interval
        (sooner when the next job is due sooner)."""
        if time.monotonic() < self.next_promote:
            return
        interval = self.settings.promote_interval_s
        try:
            moved, next_due = self.broker.promote(self.settings.queues[0])
            while moved == PROMOTE_CHUNK:
                moved, next_due = self.broker.promote(self.settings.queues[0])
            self.cancel_requests = self.watchdog.cancel_requests(self.broker, self.children.values())
        except BatchrunError as exc:
            self._redis_trouble("cannot promote due jobs", exc)
            next_due = None
        wait = interval if next_due is None else min(interval, max(0.0, next_due - time.time()))
        self.next_promote = time.monotonic() + wait

    # --- starting ----------------------------------------------------------

    def spawn_missing(self) -> None:
        busy = {child.slot for child in self.children.values()}
        now = time.monotonic()
        for index, place in enumerate(self.places):
            if index not in busy and now >= place.start_after:
                self.spawn(index)

    def spawn(self, slot: int) -> None:
        identity = Identity(f"{self.id}-w{slot}-{secrets.token_hex(2)}", self.id, self.host,
                            self.thread_cap.describe())
        for handler in logging.getLogger("batchrun").handlers:
            handler.flush()
        self.job_slots[slot].clear()
        pid = fork_worker(lambda: child_main(
            self.settings, self.registry, self.connection.url, identity, self.job_slots[slot], self.release_in_child
        ))
        now = time.monotonic()
        self.children[pid] = Child(pid, identity.worker_id, slot, now, vouched_at=now)
        log.debug("started worker %s (pid %d)", identity.worker_id, pid)

    # --- conditions --------------------------------------------------------

    def check_server(self) -> None:
        server = self.connection.server
        if server is not None and not server.alive():
            log.critical("the embedded Redis server exited; stopping")
            self.exit_code = ExitCode.REDIS
            self.request_stop("embedded server gone")

    def check_until_empty(self) -> None:
        if not self.until_empty:
            return
        try:
            idle = self.inspector.is_idle(self.settings.queues)
        except BatchrunError as exc:
            self._redis_trouble("cannot check whether queues are empty", exc)
            return
        if idle:
            self.request_stop("queues are empty")


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    return available_cpus()
