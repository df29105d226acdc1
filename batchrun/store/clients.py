"""Builds a redis-py client for any URL batchrun accepts: one server, a Sentinel-watched master, or a Cluster.

Every caller (client, supervisor, its beat client, each worker) gets its client
here, so all of them find the current master after a Sentinel failover and
route to the right shard on a Cluster without knowing which kind they use.
Our scripts are safe to repeat, so a client retries a dropped connection
briefly; longer outages reach callers as RedisUnavailable.
"""
from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from batchrun.definitions.urls import MULTI_SCHEMES, MultiHostUrl, parse_multi


def build(url: str, *, socket_timeout_s: float, retries: int) -> redis.Redis:
    """A client for `url` (see definitions/urls.py for the Sentinel and Cluster forms)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(5.0, socket_timeout_s),
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
        **_own_version(),
    }
    if not url.startswith(MULTI_SCHEMES):
        return redis.Redis.from_url(url, **options)
    parsed = parse_multi(url)
    if parsed.kind == "sentinel":
        return _sentinel_master(parsed, options)
    return _cluster(parsed, options)


def _own_version() -> dict[str, Any]:
    """redis-py's version for CLIENT SETINFO, given so that it need not look it up with importlib.metadata
    (see store/deferred.py). Releases before DriverInfo take `lib_version`."""
    if hasattr(redis, "DriverInfo"):
        return {"driver_info": redis.DriverInfo(lib_version=redis.__version__)}
    return {"lib_version": redis.__version__}


def _credentials(parsed: MultiHostUrl) -> dict[str, Any]:
    extra: dict[str, Any] = {"username": parsed.username, "password": parsed.password}
    if parsed.tls:
        extra["ssl"] = True
    return extra


def _sentinel_master(parsed: MultiHostUrl, options: dict[str, Any]) -> redis.Redis:
    """The master's client asks the Sentinels where the master is on every (re)connection, so after
    a failover it follows the promoted replica on its own. The URL's credentials are the master's;
    the Sentinels are reached with the same TLS setting and no password."""
    sentinel_options = {"socket_timeout": options["socket_timeout"],
                        "socket_connect_timeout": options["socket_connect_timeout"]}
    if parsed.tls:
        sentinel_options["ssl"] = True
    sentinel = Sentinel(list(parsed.hosts), sentinel_kwargs=sentinel_options, **options)
    return sentinel.master_for(parsed.service, db=parsed.db, **_credentials(parsed))


def _cluster(parsed: MultiHostUrl, options: dict[str, Any]) -> redis.Redis:
    """The cluster client asks a node for the slot map as it is built; a Cluster that cannot be reached
    then is reported as the connection error it is."""
    nodes = [ClusterNode(host, port) for host, port in parsed.hosts]
    try:
        client = RedisCluster(startup_nodes=nodes, **options, **_credentials(parsed))
    except RedisClusterException as exc:
        raise redis.ConnectionError(str(exc)) from None
    return client  # type: ignore[return-value]


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)
