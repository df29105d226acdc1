"""Job handlers for the benchmark project (copied into it as `benchjobs.py`)."""
import os
import time


def noop() -> None:
    return None


def burn(loops: int) -> int:
    """Pure-Python CPU work; the suite calibrates `loops` to about 100 ms on this machine."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def stamp(sent: float) -> float:
    """Latency probe: report how long after `sent` (time.time() at submit) the handler started."""
    return time.time() - sent


def sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
