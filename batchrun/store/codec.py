"""Redis replies as text: bytes (hiredis, RESP) or str, decoded so that a tampered value is still shown."""
from __future__ import annotations


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
