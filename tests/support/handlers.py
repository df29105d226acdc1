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


def hold_gil(seconds: float, tag: str = "") -> int:
    """One C call that never releases the GIL for about `seconds`, as sorted(), re or json.loads
    on large data do: no other thread of this process runs meanwhile."""
    _record(tag)
    started = time.perf_counter()
    sum(range(1_000_000))
    rate = 1_000_000 / max(time.perf_counter() - started, 1e-6)
    total = sum(range(int(rate * seconds)))
    _record(tag, "end")
    return total % 1000


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


def fail_times(times: int, tag: str = "") -> str:
    """Fails its first `times` runs (counted in a file per tag), then succeeds."""
    _record(tag)
    counter = HERE / f"failures-{tag}"
    failed = int(counter.read_text()) if counter.exists() else 0
    if failed < times:
        counter.write_text(str(failed + 1))
        raise RuntimeError(f"failure {failed + 1} of {times}")
    return f"succeeded after {failed} failures"


def permanent(tag: str = "") -> None:
    from batchrun import PermanentError

    _record(tag)
    raise PermanentError("this input can never work")


def forever(tag: str = "") -> None:
    """A pure-Python infinite loop; records its cleanup if it is interrupted."""
    from batchrun import JobInterrupted

    _record(tag)
    try:
        while True:
            pass
    except JobInterrupted:
        _record(tag, "cleanup")
        raise


def block(tag: str = "") -> None:
    """Stuck in a system call."""
    _record(tag)
    time.sleep(1e6)


def deaf(tag: str = "") -> None:
    """Ignores the interrupt signal, as code stuck in a C extension would: only SIGKILL stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    _record(tag)
    time.sleep(1e6)


def allocate(megabytes: int, tag: str = "") -> int:
    """Grows its memory by 10 MB steps up to `megabytes`, touching every page."""
    _record(tag)
    chunks = []
    for _ in range(megabytes // 10):
        chunks.append(bytearray(10 * 1024 * 1024))
        time.sleep(0.01)
    _record(tag, "end")
    return len(chunks)


def big_result(size: int) -> str:
    return "x" * size


def square(n: int, seconds: float = 0.0, label: str = "") -> dict:
    """A batch job whose result tells which input it ran on; n < 0 fails."""
    _record(f"square-{n}")
    time.sleep(seconds)
    if n < 0:
        raise ValueError(f"negative input {n}")
    return {"n": n, "square": n * n, "label": label}


def batch_done(batch_id: str) -> str:
    """An on_complete callback: records the batch it was called for."""
    _record(f"batch-done-{batch_id}")
    return batch_id
