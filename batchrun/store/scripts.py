"""Loads the Lua scripts in `lua/` and registers them with a Redis client.

Each script is one atomic state change of a job; keeping them as files with a
documented header (KEYS and ARGV) makes the headers the reference for how keys
are used. Scripts that change a job's state share the helpers of `lib.lua`,
put in front of their own text here, since Redis scripts cannot import.
redis-py's Script runs them with EVALSHA and reloads on NOSCRIPT, so a
restarted Redis is handled transparently.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

JOB_STATE = ("enqueue", "enqueue_many", "fetch", "ack", "release", "fail", "bury", "reclaim", "promote", "cancel",
             "requeue", "purge", "progress", "fire", "enqueue_controlled", "batch_enqueue",
             "batch_close")
NAMES = (*JOB_STATE, "register", "beat", "checkpoint", "sweep", "pause", "batch_open")


@cache
def _read(name: str) -> str:
    """Read beside this module: importlib.resources would import zipfile and its compressors (about 2 ms)
    on a supervisor's way to its first fork."""
    return (Path(__file__).parent / "lua" / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    return _lib_for(_read(name)) + _read(name) if name in JOB_STATE else _read(name)


_DEFINITION = re.compile(r"^local (?:function )?(\w+)", re.M)
_NAME = re.compile(r"\w+")
_NOT_CODE = re.compile(r"--[^\n]*|'[^'\n]*'")  # comments and quoted strings name no definition


def _names(lua: str) -> set[str]:
    return set(_NAME.findall(_NOT_CODE.sub(" ", lua)))


def _lib_for(script: str) -> str:
    """The definitions of lib.lua that `script` uses, directly or through each other, in lib.lua's order.
    A call runs the whole prelude each time, making a closure per function: the full lib cost enqueue.lua
    a tenth of its server time (callgrind, instructions per call)."""
    chunks = _lib_chunks()
    wanted, todo = set(), _names(script) & chunks.keys()
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= (_names(chunks[name]) & chunks.keys()) - wanted
    return "".join(text for name, text in chunks.items() if name in wanted)


@cache
def _lib_chunks() -> dict[str, str]:
    """lib.lua's top-level definitions by name, each running to the next (so with the comment above that one)."""
    text = _read("lib")
    starts = list(_DEFINITION.finditer(text))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return {m[1]: text[m.start():end] for m, end in zip(starts, ends)}


class Scripts:
    """The registered scripts of one client, as attributes named after their files."""

    enqueue: Script
    enqueue_many: Script
    fetch: Script
    ack: Script
    release: Script
    fail: Script
    bury: Script
    register: Script
    beat: Script
    sweep: Script
    reclaim: Script
    promote: Script
    cancel: Script
    requeue: Script
    purge: Script
    progress: Script
    checkpoint: Script
    fire: Script
    enqueue_controlled: Script
    pause: Script
    batch_open: Script
    batch_enqueue: Script
    batch_close: Script

    def __init__(self, client: redis.Redis) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))
