"""What each worker is running, in memory shared with its supervisor.

The supervisor enforces time and memory limits and cancellations from outside
the worker, because a job stuck in a C extension or a system call cannot be
trusted to check a clock. It needs to know, every few milliseconds and
without a Redis round trip, which job each worker runs and its limits; each
worker writes that into its slot of an anonymous shared mapping created
before the fork. Writes are guarded by a sequence number (odd while
writing), so the supervisor never acts on a half-written slot.

A worker also marks its slot ready once it has booted and registered its
heartbeat: from then on the supervisor vouches for it (liveness.py), and its
death is no longer a crash loop to back off from.

Clocks are time.monotonic(), which on Linux is one clock for all processes.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

_RUNNING = struct.Struct("<24sddQ48s")  # job id, started, deadline (0: none), memory limit (0: none), job name
_SEQ = struct.Struct("<Q")
_INTERRUPT = struct.Struct("<24sd")  # job id and start of the attempt the supervisor wants stopped
_READY = struct.Struct("<Q")  # 1 once the worker has booted and registered its heartbeat
_RUNNING_AT = _SEQ.size
_INTERRUPT_AT = _RUNNING_AT + _RUNNING.size
_READY_AT = _INTERRUPT_AT + _INTERRUPT.size
SLOT_SIZE = _READY_AT + _READY.size


@dataclass(frozen=True)
class Running:
    job_id: str
    started: float
    deadline: float | None
    memory_limit: int | None
    job: str = ""


class Slot:
    def __init__(self, memory: mmap.mmap, offset: int) -> None:
        self.memory = memory
        self.offset = offset

    def begin(self, job_id: str, started: float, deadline: float | None, memory_limit: int | None,
              job: str = "") -> None:
        self._write(_RUNNING.pack(job_id.encode(), started, deadline or 0.0, memory_limit or 0, job.encode()))

    def end(self) -> None:
        self._write(_RUNNING.pack(b"", 0.0, 0.0, 0, b""))

    def mark_ready(self) -> None:
        """The worker has booted: from now on its supervisor vouches for it, and a death is no crash loop."""
        _READY.pack_into(self.memory, self.offset + _READY_AT, 1)

    @property
    def ready(self) -> bool:
        return _READY.unpack_from(self.memory, self.offset + _READY_AT)[0] == 1

    def clear(self) -> None:
        """Called by the supervisor before it starts a worker in this slot."""
        self.memory[self.offset:self.offset + SLOT_SIZE] = bytes(SLOT_SIZE)

    def current(self) -> Running | None:
        """The job being run, or None when idle or caught in the middle of a write."""
        before = self._seq()
        job_id, started, deadline, memory_limit, job = _RUNNING.unpack_from(self.memory, self.offset + _RUNNING_AT)
        if before % 2 or self._seq() != before or not job_id.rstrip(b"\0"):
            return None
        return Running(job_id.rstrip(b"\0").decode("ascii", "replace"), started, deadline or None,
                       memory_limit or None, job.rstrip(b"\0").decode("utf-8", "replace"))

    def request_interrupt(self, job_id: str, started: float) -> None:
        """Names the attempt, not just the job: a retry of the same job must not be hit by it."""
        _INTERRUPT.pack_into(self.memory, self.offset + _INTERRUPT_AT, job_id.encode(), started)

    def interrupt_requested(self, job_id: str, started: float) -> bool:
        wanted, when = _INTERRUPT.unpack_from(self.memory, self.offset + _INTERRUPT_AT)
        return wanted.rstrip(b"\0") == job_id.encode() and when == started

    def _seq(self) -> int:
        return _SEQ.unpack_from(self.memory, self.offset)[0]

    def _write(self, running: bytes) -> None:
        seq = self._seq()
        _SEQ.pack_into(self.memory, self.offset, seq + 1)
        self.memory[self.offset + _RUNNING_AT:self.offset + _INTERRUPT_AT] = running
        _SEQ.pack_into(self.memory, self.offset, seq + 2)


class Slots:
    """One slot per worker place of a supervisor; children inherit the mapping through fork."""

    def __init__(self, count: int) -> None:
        self.memory = mmap.mmap(-1, max(1, count) * SLOT_SIZE)
        self.count = count

    def __getitem__(self, index: int) -> Slot:
        if not 0 <= index < max(1, self.count):
            raise IndexError(index)
        return Slot(self.memory, index * SLOT_SIZE)
