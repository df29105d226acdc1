"""How a worker ended, said plainly for the supervisor's log: the facts, and for a signal that nobody in
batchrun sent, the likely causes without guessing which one it was."""
from __future__ import annotations

import signal
from typing import Protocol

from batchrun.runtime.slots import Running
from batchrun.runtime.worker import WorkerExit


class Ended(Protocol):
    pid: int
    worker_id: str
    killed_by_us: bool


def describe_exit(child: Ended, code: int, running: Running | None) -> str:
    """How it ended, its pid, and the job it was running (`running`, read from its slot)."""
    who = f"worker {child.worker_id} (pid {child.pid})"
    if code >= 0:
        meaning = {WorkerExit.OK: "exited", WorkerExit.FENCED: "exited: its heartbeat had expired",
                   WorkerExit.BOOT_FAILED: "failed to boot", WorkerExit.RECYCLED: "exited to be recycled",
                   WorkerExit.INTERRUPTED: "exited after its job was interrupted",
                   }.get(code, f"exited with code {code}")
        return f"{who} {meaning}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    doing = f"while running job {running.job_id} ({running.job})" if running else "while idle"
    causes = "" if child.killed_by_us else "; " + _likely_causes(-code)
    return f"{who} was killed by {name} {doing}{causes}"


def _likely_causes(signum: int) -> str:
    if signum in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        return "a crash in native code: a C extension the job used, or the interpreter"
    if signum == signal.SIGKILL:
        return ("sent from outside batchrun: the kernel's out-of-memory killer, an operator, "
                "or a container runtime or service manager")
    return "sent from outside batchrun: an operator or another program"
