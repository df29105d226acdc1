"""One supervisor per namespace and state folder on a host, so a cron job started twice cannot double the work.

A flock on a file, not a key in Redis: the kernel drops it the instant the
process dies, so a SIGKILLed supervisor never blocks its successor. The file
also names the holder's supervisor id: a successor that gets the lock knows
that supervisor is dead, and so are its workers (they die with it), so it can
put their jobs back at once instead of waiting for their heartbeats to expire.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from batchrun.errors import AlreadyRunning


class SupervisorLock:
    def __init__(self, state_dir: Path, namespace: str) -> None:
        self.path = state_dir / f"supervisor-{namespace}.lock"
        self.fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; returns the supervisor id its previous holder recorded, if any."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(f"another supervisor (pid {holder}) is running for this namespace and state folder")
        previous = os.pread(fd, 512, 0).decode(errors="replace").splitlines()
        self.fd = fd
        self.record("")
        return previous[1].strip() or None if len(previous) > 1 else None

    def record(self, supervisor_id: str) -> None:
        """Name the running supervisor, for the next holder."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n{supervisor_id}\n".encode(), 0)

    def close_in_child(self) -> None:
        """A forked worker drops its copy, so the lock dies with the supervisor and not with an orphan."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
