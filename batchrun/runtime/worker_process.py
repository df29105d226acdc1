"""The first code a forked worker runs: make the child its own process, then run a Worker.

After fork the child inherits the supervisor's signal handlers, wake-up pipe,
lock files and Redis connection. It drops what it must not touch, connects to
Redis anew, and always leaves through os._exit so that no atexit hook of the
supervisor runs in a worker.

A worker dies with its supervisor (the kernel's parent-death signal, SIGKILL):
the supervisor is what vouches for it in Redis, so a worker left without one
would soon be presumed dead while still running its job, and another host
would run that job a second time.
"""
from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Callable, Iterable
from typing import NoReturn

from batchrun.definitions.config import Settings
from batchrun.definitions.registry import Registry
from batchrun.errors import RedisUnavailable
from batchrun.runtime.childproc import parent_death_signal
from batchrun.runtime.execute import Executor
from batchrun.runtime.slots import Slot
from batchrun.runtime.worker import Identity, Worker, WorkerExit
from batchrun.store.broker import Broker
from batchrun.store.connection import client_for

log = logging.getLogger("batchrun.worker")

BLOCKED_AROUND_FORK = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1}


def fork_worker(child: Callable[[], NoReturn]) -> int:
    """Fork with signals blocked, so the child cannot die of one before installing its own handlers."""
    arm_death_signal = parent_death_signal(signal.SIGKILL)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_AROUND_FORK)
    try:
        pid = os.fork()
        if pid == 0:
            arm_death_signal()
            child()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid


def child_main(
    settings: Settings, registry: Registry, url: str, identity: Identity, slot: Slot,
    release_inherited: Iterable[Callable[[], None]],
) -> NoReturn:
    """Boot a worker and run it. A boot failure other than Redis being away gets its own exit code,
    so the supervisor halts instead of respawning a worker that cannot start."""
    code: int = 1
    try:
        worker = _prepare(settings, registry, url, identity, slot, release_inherited)
        try:
            worker.boot()
        except RedisUnavailable as exc:
            log.error("worker %s cannot reach Redis at boot: %s", identity.worker_id, exc)
            os._exit(1)
        except Exception:
            log.exception("worker %s failed to boot", identity.worker_id)
            os._exit(WorkerExit.BOOT_FAILED)
        code = worker.run()
    except BaseException:
        log.exception("worker %s crashed", identity.worker_id)
    finally:
        logging.shutdown()
        os._exit(code)


def _prepare(
    settings: Settings, registry: Registry, url: str, identity: Identity, slot: Slot,
    release_inherited: Iterable[Callable[[], None]],
) -> Worker:
    for release in release_inherited:
        release()
    signal.set_wakeup_fd(-1)
    random.seed()
    broker = Broker.for_settings(client_for(url), settings)
    worker = Worker(broker, settings, registry, Executor(registry, settings.project_dir), identity, slot)
    _install_signals(worker)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    return worker


def _install_signals(worker: Worker) -> None:
    """SIGTERM: finish the current job, then exit. SIGUSR1: the current job is interrupted (timeout,
    cancel). SIGINT from the terminal is the supervisor's to handle."""

    def stop(signum: int, frame: object) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, worker.on_interrupt_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
