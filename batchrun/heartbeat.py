"""A worker's heartbeat, refreshed by a thread so that a long CPU-bound job keeps it alive.

Pure-Python code releases the GIL every few milliseconds, so the thread gets
to run however busy the job is; only a C extension that holds the GIL for
longer than the heartbeat TTL could starve it.

A worker that cannot renew its heartbeat for nearly a TTL must assume that
other supervisors are about to reclaim its job, so it stops itself: better a
job run again than the same job running twice at once. The heartbeat has its
own connection with a short timeout, so a stalled socket is noticed in time.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from batchrun.broker import Broker
from batchrun.errors import BatchrunError

log = logging.getLogger("batchrun.heartbeat")


class Heartbeat(threading.Thread):
    def __init__(
        self, broker: Broker, worker_id: str, interval_s: float, ttl_s: float, on_fenced: Callable[[], None],
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.broker = broker
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.on_fenced = on_fenced
        self.on_tick = on_tick
        self.stopped = threading.Event()
        self.last_success = time.monotonic()

    def run(self) -> None:
        self.last_success = time.monotonic()
        while not self.stopped.wait(self.interval_s):
            try:
                self.on_tick()
            except Exception:
                log.exception("heartbeat check failed; beating anyway")
            self.beat_once()

    def beat_once(self) -> None:
        try:
            alive = self.broker.beat(self.worker_id, self.ttl_s)
        except BatchrunError as exc:
            log.warning("heartbeat failed: %s", exc)
            if time.monotonic() - self.last_success > self.ttl_s - self.interval_s / 2:
                self.on_fenced()
            return
        if not alive:
            self.on_fenced()
            return
        self.last_success = time.monotonic()

    def stop(self) -> None:
        self.stopped.set()
