"""Example command job: the longest Collatz chain below a limit, printed as JSON on stdout."""
from __future__ import annotations

import json
import sys


def longest_chain(limit: int) -> tuple[int, int]:
    best, best_len = 1, 1
    for start in range(1, limit):
        n, length = start, 1
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            length += 1
        if length > best_len:
            best, best_len = start, length
    return best, best_len


if __name__ == "__main__":
    start, length = longest_chain(int(sys.argv[1]))
    print(json.dumps({"start": start, "length": length}))
