"""Keeps modules a batchrun process never uses out of it until something uses them.

- importlib.metadata (with email, zipfile and csv: about 10 ms, a fifteenth of
  a supervisor's start-up): redis-py imports it only to look up its own
  version for the CLIENT SETINFO it sends on each new connection. batchrun's
  clients give it that version (store/clients.py).
- redis.asyncio (redis-py's asyncio client, 4% of the instructions `batchrun
  --help` runs, by callgrind): redis/__init__.py imports it unconditionally,
  and no batchrun process uses it.

Until something uses such a module, sys.modules holds a module made from the
real spec but not yet run: the first attribute asked of it that it lacks runs
the module's code in it, as importing would, so there is only ever one module
object. Its name, spec and path are set from the start, so the import system,
importlib.util.find_spec and imports of its submodules treat it as loaded.

Only the `batchrun` command asks for this (__main__.py), so it applies to the processes batchrun owns,
supervisors and their workers; a program that imports batchrun as a library keeps the import system as
it was.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    def __getattr__(self, attribute: str) -> Any:
        """Called only for attributes the module lacks: run its code first (once), then look again.
        While the code runs, its own `from . import x` must find nothing here and import the submodule."""
        with _LOCK:
            if type(self) is _Deferred and not vars(self).get("_deferred_running"):
                self._deferred_running = True
                try:
                    self.__spec__.loader.exec_module(self)
                finally:
                    del self._deferred_running
                self.__class__ = types.ModuleType
            elif type(self) is _Deferred:
                raise AttributeError(attribute)
        return getattr(self, attribute)


def defer(name: str) -> None:
    """Hold `name`, a submodule of a package, unrun until first use, unless it is loaded already. The package
    need not be imported yet: when it imports the submodule itself (`from redis import asyncio`), the import
    system finds it in sys.modules."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    package = sys.modules.get(parent)
    if package is not None:
        search = package.__path__
    else:  # found, not imported (for a top-level package: a dotted one would import its parents)
        search = getattr(importlib.util.find_spec(parent), "submodule_search_locations", None)
    spec = importlib.machinery.PathFinder.find_spec(name, search) if search else None
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
    if package is not None:
        setattr(package, child, module)
