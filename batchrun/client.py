"""The Python API: submit jobs and read their state, as the CLI does.

    with batchrun.Client.open() as client:
        job_id = client.submit("count-primes", stop=100_000)
        client.job(job_id)["state"]

Parameters are validated against the job's YAML definition before anything
is written, so a bad submit changes nothing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from batchrun.broker import Broker
from batchrun.config import Settings, load_settings
from batchrun.connection import Connection, connect
from batchrun.errors import JobNotFound, SubmitError
from batchrun.ids import new_job_id
from batchrun.inspection import Inspector
from batchrun.registry import JobDefinition, Registry, load_registry


class Client:
    def __init__(self, settings: Settings, registry: Registry, connection: Connection) -> None:
        self.settings = settings
        self.registry = registry
        self.connection = connection
        self.broker = Broker(connection.client, settings.namespace)
        self.inspector = Inspector(connection.client, settings.namespace)

    @classmethod
    def open(
        cls, config: Path | str | None = None, jobs_dir: Path | str | None = None, **overrides: object
    ) -> "Client":
        """Load settings and job definitions as the CLI does, and connect (starting the embedded server if needed)."""
        settings = load_settings(
            Path(config) if config else None, jobs_dir=Path(jobs_dir) if jobs_dir else None, overrides=overrides
        )
        registry = load_registry(settings.jobs_dir, settings.queues)
        return cls(settings, registry, connect(settings))

    def submit(self, job: str, /, **params: Any) -> str:
        return self.submit_params(job, params)

    def submit_params(self, job: str, params: Mapping[str, Any]) -> str:
        """Validate and enqueue one job; returns its id."""
        definition = self._definition(job)
        payload = encode_params(definition.validate_params(params), self.settings.max_payload_bytes)
        job_id = new_job_id()
        self.broker.enqueue(job_id, definition.name, payload, definition.queue)
        return job_id

    def submit_many(self, job: str, params_list: Sequence[Mapping[str, Any]]) -> list[str]:
        """Validate every job first, then enqueue them all in one pipeline; returns their ids in order."""
        definition = self._definition(job)
        limit = self.settings.max_payload_bytes
        items = [(new_job_id(), encode_params(definition.validate_params(p), limit)) for p in params_list]
        self.broker.enqueue_many(definition.name, definition.queue, items)
        return [job_id for job_id, _ in items]

    def _definition(self, job: str) -> JobDefinition:
        try:
            return self.registry.get(job)
        except SubmitError as exc:
            if self.registry.errors:
                broken = ", ".join(sorted({str(e.location.file) for e in self.registry.errors if e.location}))
                raise SubmitError(f"{exc} (these job files are invalid: {broken})") from exc
            raise

    def job(self, job_id: str) -> dict[str, Any]:
        info = self.inspector.job(job_id)
        if info is None:
            raise JobNotFound(f"no job {job_id!r} (unknown, or its record expired)")
        return info

    def status(self) -> dict[str, Any]:
        return self.inspector.status(self.settings.queues)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_params(params: Mapping[str, Any], limit_bytes: int) -> bytes:
    payload = orjson.dumps(params)
    if len(payload) > limit_bytes:
        raise SubmitError(f"params are {len(payload)} bytes as JSON; the limit is {limit_bytes} (max_payload)")
    return payload
