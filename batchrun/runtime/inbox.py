"""The supervisor's signal inbox: handlers only record a signal, and the loop's sleep ends when one comes.

As in gunicorn's arbiter, a handler does nothing but append the signal number,
so no work runs at an arbitrary point of the loop. Python's wake-up fd makes
the interpreter write a byte to a pipe when a signal arrives, which ends the
loop's select() at once instead of at its timeout.
"""
from __future__ import annotations

import os
import select
import signal
from collections.abc import Sequence


class SignalInbox:
    def __init__(self, signals: Sequence[int]) -> None:
        self.signals = tuple(signals)
        self.received: list[int] = []
        self.read_fd, self.write_fd = os.pipe()
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        os.set_blocking(self.write_fd, False)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._record) for s in self.signals}

    def restore(self) -> None:
        """Put back the handlers found at install(), and stop writing to the pipe."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(-1)

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def take(self) -> list[int]:
        """The signals received since the last take, oldest first."""
        taken = []
        while self.received:  # one pop at a time: a handler may append between any two bytecodes
            taken.append(self.received.pop(0))
        return taken

    def wait(self, timeout_s: float) -> None:
        """Sleep up to timeout_s, or not at all while a received signal waits to be taken."""
        if self.received:
            return
        ready, _, _ = select.select([self.read_fd], [], [], timeout_s)
        if ready:
            try:
                os.read(self.read_fd, 4096)
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Close the pipe (a forked worker closes its copy: it never reads it)."""
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
