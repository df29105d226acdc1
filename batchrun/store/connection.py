"""Finds the Redis to talk to: the configured URL, or the embedded server in the state folder."""
from __future__ import annotations

from dataclasses import dataclass, field

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from batchrun.definitions.config import Settings
from batchrun.errors import RedisUnavailable
from batchrun.store.embedded import EmbeddedServer

SOCKET_TIMEOUT_S = 10.0


def client_for(url: str, *, socket_timeout_s: float = SOCKET_TIMEOUT_S, retries: int = 3) -> redis.Redis:
    """A client that retries briefly on dropped connections; our scripts are safe to repeat."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(5.0, socket_timeout_s),
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
    )


@dataclass
class Connection:
    url: str
    client: redis.Redis
    server: EmbeddedServer | None = field(default=None)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.release()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings) -> Connection:
    """Connect to settings.redis_url, or to the state folder's embedded server when none is set
    (starting it if no other batchrun process of that folder runs it yet)."""
    server = None
    url = settings.redis_url
    if not url:
        server = EmbeddedServer(settings.state_dir, appendfsync=settings.appendfsync)
        url = server.acquire()
    client = client_for(url)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        client.close()
        if server is not None:
            server.release()
        raise RedisUnavailable(f"cannot reach Redis at {url}: {exc}") from exc
    return Connection(url, client, server)
