"""Job ids: time-ordered so that listings sort by submission, random so that any client can make them."""
from __future__ import annotations

import re
import secrets
import time

JOB_ID = re.compile(r"^[0-9a-f]{12}[0-9a-f]{12}$")


def new_job_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def is_job_id(text: str) -> bool:
    return bool(JOB_ID.match(text))
