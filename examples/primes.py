"""Example CPU-heavy job: count the primes in [start, stop) by trial division over odd numbers."""
from __future__ import annotations

import math


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for d in range(3, math.isqrt(n) + 1, 2):
        if n % d == 0:
            return False
    return True


def count_primes(stop: int, start: int = 0) -> dict:
    count = sum(1 for n in range(start, stop) if is_prime(n))
    return {"start": start, "stop": stop, "primes": count}
