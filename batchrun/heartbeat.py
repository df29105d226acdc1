"""A worker's heartbeat, refreshed by a thread so that a long CPU-bound job keeps it alive.

Pure-Python code releases the GIL every few milliseconds, so the thread gets
to run however busy the job is; only a C extension that holds the GIL for
longer than the heartbeat TTL could starve it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from batchrun.broker import Broker
from batchrun.errors import RedisUnavailable

log = logging.getLogger("batchrun.heartbeat")


class Heartbeat(threading.Thread):
    def __init__(
        self, broker: Broker, worker_id: str, interval_s: float, ttl_s: float, on_fenced: Callable[[], None]
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.broker = broker
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.on_fenced = on_fenced
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.beat_once()

    def beat_once(self) -> None:
        try:
            alive = self.broker.beat(self.worker_id, self.ttl_s)
        except RedisUnavailable as exc:
            log.warning("heartbeat failed: %s", exc)
            return
        if not alive:
            self.on_fenced()

    def stop(self) -> None:
        self.stopped.set()
