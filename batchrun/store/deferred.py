"""Keeps importlib.metadata out of a batchrun process until something uses it.

redis-py imports importlib.metadata (with email, zipfile and csv: about 10 ms, a fifteenth of a
supervisor's start-up) only to look up its own version for the CLIENT SETINFO it sends on each new
connection. batchrun's clients give it that version (store/clients.py), so no supervisor or worker
needs the module. Until something does, sys.modules holds a module made from the real spec but not yet
run: the first attribute asked of it that it lacks runs the module's code in it, as importing would, so
there is only ever one module object. Its name, spec and path are set from the start, so the import
system, importlib.util.find_spec and imports of its submodules treat it as loaded.

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
    """Hold `name`, a submodule of an imported package, unrun until first use, unless it is loaded already."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    spec = importlib.machinery.PathFinder.find_spec(name, sys.modules[parent].__path__)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
    setattr(sys.modules[parent], child, module)
