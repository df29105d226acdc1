"""When a supervisor looks for workers whose heartbeat expired: at the next expiry, not on a fixed beat.

A dead host's workers are found by any other supervisor once their heartbeats
expire. Sweeping on a fixed interval would find them up to one interval late;
instead each sweep asks Redis when the next heartbeat expires (sweep.lua reads
an index of expiry times, so its cost stays flat however many hosts there are)
and the next sweep is timed to that moment, never later than one heartbeat
interval (a worker registered after the sweep, by a host with a shorter TTL,
is still found in time).

The first sweep of a supervisor also reads every registered worker once, so
workers registered before the index existed are never forgotten.
"""
from __future__ import annotations

from batchrun.store.broker import Broker


class ExpirySweep:
    def __init__(self, broker: Broker, interval_s: float, ttl_s: float) -> None:
        self.broker = broker
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.next_at = 0.0
        self.scanned = False

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def expired(self, now: float) -> list[str]:
        """Workers whose heartbeat has expired and that this supervisor should reclaim. Each is handed
        to one supervisor for a TTL (a lease), so supervisors sweeping together do not race for it.
        Raises BatchrunError when Redis is away (the next try is one interval later)."""
        self.next_at = now + self.interval_s
        found = set()
        if not self.scanned:
            found.update(self.broker.expired_workers())
            self.scanned = True
        next_s, swept = self.broker.sweep(lease_s=self.ttl_s)
        if next_s is not None:
            self.next_at = now + min(self.interval_s, next_s)
        return sorted(found.union(swept))
