"""Keeps importlib.metadata out of a batchrun process until something uses it.

redis-py imports importlib.metadata (with email, zipfile and csv: about 10 ms, a fifteenth of a
supervisor's start-up) only to look up its own version for the CLIENT SETINFO it sends on each new
connection. batchrun's clients give it that version (store/clients.py), so no supervisor or worker
needs the module. Until something does, its name is held by a stand-in: the first attribute asked of
it imports the real module, whose attributes the stand-in then takes, so every holder of either sees
the same functions and classes. It carries the real module's spec, so the import system and
importlib.util.find_spec treat it as loaded.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types
from typing import Any

_LOCK = threading.Lock()


class _Deferred(types.ModuleType):
    def __getattr__(self, attribute: str) -> Any:
        """Called only for attributes the stand-in does not hold yet: import the real module, adopt it."""
        with _LOCK:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            vars(self).update(vars(real))
        return getattr(real, attribute)


def defer(name: str) -> None:
    """Stand in for `name`, a submodule of an imported package, unless it is loaded already."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    spec = importlib.machinery.PathFinder.find_spec(name, sys.modules[parent].__path__)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    setattr(sys.modules[parent], child, stand_in)
