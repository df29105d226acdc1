"""Job handlers for the test projects; copied into each project as `testjobs.py`.

Each run appends "<tag> <pid>" to runs.log beside this file (one write with
O_APPEND, so lines from concurrent workers never interleave), which is how
tests count executions.
"""
import os
import signal
import time
from pathlib import Path

HERE = Path(__file__).parent


def _record(tag: str, event: str = "start") -> None:
    fd = os.open(HERE / "runs.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{event} {tag} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def noop() -> None:
    return None


def sleep(seconds: float, tag: str = "") -> dict:
    _record(tag)
    time.sleep(seconds)
    _record(tag, "end")
    return {"slept": seconds}


def spin(seconds: float, tag: str = "") -> int:
    """Pure-Python CPU work that holds the GIL as a real CPU-bound job does."""
    _record(tag)
    deadline = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < deadline:
        loops += sum(i * i for i in range(200)) > 0
    _record(tag, "end")
    return loops


def crash(tag: str = "") -> None:
    _record(tag)
    os.kill(os.getpid(), signal.SIGKILL)


def crash_once(tag: str = "") -> str:
    marker = HERE / f"crashed-{tag}"
    _record(tag)
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    _record(tag, "end")
    return "survived"


def fail(tag: str = "") -> None:
    _record(tag)
    raise RuntimeError(f"boom {tag}")


def unserialisable() -> object:
    return object()
