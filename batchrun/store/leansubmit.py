"""The packed enqueue.lua call of a one-call submit, from a shape packed once per job definition and queue.

Of enqueue.lua's 3 keys and 9 arguments (see its header), only the job's key,
the time, the job's id, its params and its due time change from one submit of
a definition to the next; the rest is packed once (store/packing.py). The items
are the ones Broker.enqueue's ordinary path sends, in the same order, as the
same bytes: `tests/store/test_packing.py` checks that, so a change to one side
that the other misses fails there.
"""
from __future__ import annotations

import time

from redis.commands.core import Script

from batchrun.store.keys import Keys
from batchrun.store.packing import SLOT, Shape

MAX_SHAPES = 256  # definitions x queues a client submits to; past that, start over rather than grow


class EnqueueCalls:
    """Packs enqueue.lua calls for one namespace, events cap and wake-token cap."""

    def __init__(self, keys: Keys, script: Script, events_cap: int, wake_cap: int) -> None:
        self.keys = keys
        self.script = script
        self.events_cap = events_cap
        self.wake_cap = wake_cap
        self._job_prefix = keys.job_prefix.encode()
        self._shapes: dict[tuple[str, str], Shape] = {}

    def packed(self, job_id: str, job: str, params_json: bytes, queue: str, due: float) -> bytes:
        template = (self._shapes.get((job, queue)) or self._shape(job, queue)).template
        raw_id = job_id.encode()
        key = self._job_prefix + raw_id
        now = repr(time.time()).encode()
        due_text = repr(due).encode()
        return template % (len(key), key, len(now), now, len(raw_id), raw_id, len(params_json), params_json,
                           len(due_text), due_text)

    def _shape(self, job: str, queue: str) -> Shape:
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        k = self.keys
        shape = Shape(self.script, [SLOT, k.queue(queue), k.scheduled],
                      [k.prefix, SLOT, self.events_cap, SLOT, job, SLOT, queue, self.wake_cap, SLOT])
        self._shapes[job, queue] = shape
        return shape
