"""Everything that speaks to Redis. Before any of it imports redis-py, importlib.metadata is deferred:
see deferred.py for why."""
from batchrun.store.deferred import defer

defer("importlib.metadata")
