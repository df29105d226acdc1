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
    """A preexec_fn: the kernel sends `signum` to the child when its parent dies, even by SIGKILL."""
    arm = parent_death_signal(signum)

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        arm()

    return preexec


def parent_death_signal(signum: int) -> Callable[[], None]:
    """Returns a function for the forked child to call: the kernel sends it `signum` when the process
    that called this dies. It exits at once if that process already died before the signal was armed.

    libc is loaded here, before fork: the returned function runs in the child, where only
    async-signal-safe work is wise. The signal fires when the *thread* that forked exits, so fork
    from the main thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm
