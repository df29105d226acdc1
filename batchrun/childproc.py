"""Child processes that must not outlive the batchrun process that started them."""
from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def signal_process(pid: int, signum: int) -> None:
    """Send a signal to a process that may already have exited (and not yet been reaped)."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def die_with_parent(signum: int) -> Callable[[], None]:
    """A preexec_fn: the kernel sends `signum` to the child when its parent dies, even by SIGKILL.

    libc is loaded here, before fork: the hook itself runs in the child, where
    only async-signal-safe work is wise.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
