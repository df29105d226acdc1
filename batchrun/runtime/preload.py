"""Modules the supervisor imports once, before it forks, so every worker shares their memory.

gunicorn's --preload, for data: a 2 GB model or lookup table loaded at module
level is read once and shared by every worker copy-on-write, instead of 64
copies. gc.freeze() moves everything imported so far out of the collector's
reach, so collections in the workers do not write to (and so copy) the shared
pages. Forking a process with live Python threads is unsafe (a lock held by a
thread stays held forever in the child), so a preload that leaves threads
running is refused.
"""
from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from batchrun.errors import PreloadError

log = logging.getLogger("batchrun.supervisor")


def preload(modules: Sequence[str], project_dir: Path) -> None:
    if not modules:
        return
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:
            raise PreloadError(f"preload: importing {name!r} failed:\n{traceback.format_exc().rstrip()}") from None
    if threading.active_count() > 1:
        names = ", ".join(sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()))
        raise PreloadError(f"preload: importing {', '.join(modules)} left Python threads running ({names}); "
                           "forking workers from a process with live threads is unsafe, so start such threads "
                           "inside a job instead")
    gc.freeze()
    log.info("preloaded %s; workers share them", ", ".join(modules))
