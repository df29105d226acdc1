"""Fires due schedules: one step per supervisor tick, with no leader among supervisors.

Each supervisor keeps the next due time of every schedule in memory, so a
tick with nothing due costs no round trip. When a time comes it calls
fire.lua with that due time; the script records it and queues the job, and
the same call from any other supervisor is a no-op. The first step reads the
last due time handled of each schedule, so that a due time missed while every
supervisor was down follows its misfire policy: `once` fires the latest missed
due time once, `skip` fires nothing and waits for the next one. A due time
fired late by less than MISFIRE_GRACE_S (a slow tick, a restart) is not a
misfire. A schedule seen for the first time starts from now.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from batchrun.definitions.registry import JobDefinition, Registry
from batchrun.definitions.schedule import Schedule
from batchrun.errors import BatchrunError
from batchrun.ids import new_job_id
from batchrun.store.broker import Broker
from batchrun.store.inspection import Inspector

log = logging.getLogger("batchrun.scheduler")

MISFIRE_GRACE_S = 2.0
RETRY_AFTER_ERROR_S = 1.0
FIRED_QUEUED = 1
FIRED_TWIN_RUNS = 2


@dataclass
class Entry:
    schedule: Schedule
    definition: JobDefinition
    due: float = math.inf


class Scheduler:
    def __init__(self, broker: Broker, inspector: Inspector, registry: Registry) -> None:
        self.broker = broker
        self.inspector = inspector
        self.entries = [Entry(s, d) for d in registry.definitions.values() for s in d.schedules]
        self.started = False
        self.retry_at = 0.0

    def step(self) -> None:
        """Fire every schedule that is due; after a Redis error, try again RETRY_AFTER_ERROR_S later."""
        now = time.time()
        if not self.entries or now < self.retry_at:
            return
        try:
            if not self.started:
                self._start(now)
            for entry in self.entries:
                if now >= entry.due:
                    self._fire(entry, now)
                    entry.due = entry.schedule.next_after(now)
        except BatchrunError as exc:
            log.warning("cannot fire schedules yet: %s", exc)
            self.retry_at = now + RETRY_AFTER_ERROR_S

    def seconds_until_due(self) -> float:
        if not self.entries:
            return math.inf
        return max(0.0, min(e.due for e in self.entries) - time.time(), self.retry_at - time.time())

    def _start(self, now: float) -> None:
        marks = self.inspector.schedule_marks([e.schedule.id for e in self.entries])
        fresh = {}
        for entry in self.entries:
            handled = marks[entry.schedule.id]["due"]
            if handled is None:
                fresh[entry.schedule.id] = entry.schedule.latest_at_or_before(now)
                entry.due = entry.schedule.next_after(now)
            else:
                entry.due = entry.schedule.next_after(handled)
        self.broker.mark_schedules(fresh)
        self.started = True

    def _fire(self, entry: Entry, now: float) -> None:
        schedule, definition = entry.schedule, entry.definition
        due = schedule.latest_at_or_before(now)
        if schedule.misfire == "skip" and now - due > MISFIRE_GRACE_S:
            log.info("schedule %s: due time %s was missed; skipped (misfire: skip)", schedule.id, _iso(due))
            return
        params = dict(schedule.params)
        outcome = self.broker.fire(schedule.id, due, new_job_id(), definition.name, schedule.params_json,
                                   definition.queue, unique_key=definition.unique_key(params),
                                   limit=definition.concurrency)
        late = f", {now - due:.1f}s late" if now - due > MISFIRE_GRACE_S else ""
        if outcome == FIRED_QUEUED:
            log.info("schedule %s fired for %s%s", schedule.id, _iso(due), late)
        elif outcome == FIRED_TWIN_RUNS:
            log.info("schedule %s fired for %s%s; the same unique job has not ended, nothing queued",
                     schedule.id, _iso(due), late)


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
