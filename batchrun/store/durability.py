"""Durable submits: a write returns only once `min_replicas` replicas hold it (Redis WAIT).

Replication is asynchronous, so a master that dies right after acknowledging a
submit can take the job with it when Sentinel promotes a replica. WAIT blocks
until that many replicas have acknowledged every write this connection made,
or the timeout passes. It speaks of the connection's own writes, so the script
and the WAIT go down one connection: a pipeline on one server; on a Cluster
(whose pipelines refuse scripts) the WAIT is sent to the node that owns the
namespace's slot right after the script, on that node's connection.

What it costs is one more round trip plus the replica's acknowledgement, per
submit call (measured in `python -m bench`, scenario "replicas"). Acks, fails
and heartbeats are not waited for: a lost one makes a job run again, never lost.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from batchrun.errors import NotReplicated
from batchrun.store.clients import is_cluster


class Durability:
    def __init__(self, client: redis.Redis, min_replicas: int, timeout_s: float) -> None:
        self.client = client
        self.min_replicas = min_replicas
        self.timeout_ms = max(1, int(timeout_s * 1000))

    @property
    def wanted(self) -> bool:
        return self.min_replicas > 0

    def call(self, script: Script, keys: Sequence[str], args: Sequence[Any], job_ids: list[str]) -> Any:
        """Run `script`, then WAIT; raises NotReplicated (naming the jobs written) when too few confirm."""
        if is_cluster(self.client):
            reply = script(keys=keys, args=args)
            node = self.client.get_node_from_key(keys[0])  # type: ignore[attr-defined]
            confirmed = self.client.execute_command("WAIT", self.min_replicas, self.timeout_ms, target_nodes=node)
        else:
            with self.client.pipeline(transaction=False) as pipe:
                script(keys=keys, args=args, client=pipe)
                pipe.wait(self.min_replicas, self.timeout_ms)
                reply, confirmed = pipe.execute()
        if int(confirmed) < self.min_replicas:
            raise NotReplicated(
                f"{int(confirmed)} of min_replicas={self.min_replicas} replicas confirmed the submit within "
                f"{self.timeout_ms} ms; the job is on the master but a failover now could lose it "
                f"(jobs: {', '.join(job_ids[:5])}{' ...' if len(job_ids) > 5 else ''})", job_ids)
        return reply
