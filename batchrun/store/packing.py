"""The RESP bytes of a script call: packed whole, or filled into a shape packed once (submit's hot path).

A one-call submit sends 15 items, of which ten never change for a given job
definition and queue (the key prefix, the queue and scheduled keys, the events
cap, the job's name...). hiredis packs all 15 in about 2.5 us; a shape packs the
constant ones once, as bytes, and a call fills in only its varying items (the
job's key, id, params, the time and the due time) with one bytes-format, about
0.6 us. Both are the same bytes as redis-py sends (it packs with hiredis too):
`tests/store/test_packing.py` compares them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis.commands.core import Script

SLOT = object()  # marks an item of a Shape that each call fills in
_ITEM = b"$%d\r\n%s\r\n"  # one bulk string, as a template


def evalsha(script: Script, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """The EVALSHA command for `script`, packed as redis-py packs it."""
    return hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))


def as_eval(script: Script, packed: bytes) -> bytes:
    """The same call as EVAL with the script's text, for a server that answered NOSCRIPT."""
    count, rest = packed.split(b"\r\n", 1)
    head = _item(("EVALSHA", script.sha))
    if not rest.startswith(head):
        raise ValueError("not an EVALSHA of this script")
    return b"%s\r\n%s%s" % (count, _item(("EVAL", script.script)), rest[len(head):])


class Shape:
    """An EVALSHA call whose items are constant but for the SLOTs, packed once into a bytes template.

    Each slot is `$%d\\r\\n%s\\r\\n` in `template`, so a call is
    `template % (len(v1), v1, len(v2), v2, ...)` for bytes values in slot order
    (written out by the caller: a generic loop here would double the cost).
    """

    def __init__(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> None:
        items = ["EVALSHA", script.sha, len(keys), *keys, *args]
        pieces, constant = [], [b"*%d\r\n" % len(items)]
        for item in items:
            if item is SLOT:
                pieces.append(b"".join(constant).replace(b"%", b"%%"))
                constant = []
            else:
                constant.append(_item((item,)))
        pieces.append(b"".join(constant).replace(b"%", b"%%"))
        self.slots = len(pieces) - 1
        self.template = _ITEM.join(pieces)


def _item(items: tuple[Any, ...]) -> bytes:
    """Items packed as RESP bulk strings, without the array header hiredis puts in front."""
    return hiredis.pack_command(items).split(b"\r\n", 1)[1]
