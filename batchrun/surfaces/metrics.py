"""Prometheus metrics and /healthz, served by `batchrun supervise --metrics-port`.

Job counts and durations come from the namespace's events stream, which a
thread of the supervisor process tails from the moment it starts: every
transition is one event there, whichever host ran the job, so the counts are
the namespace's, not this supervisor's (the README says how to aggregate
them). Queue depth, in-flight, scheduled, dead and workers are read from Redis
at scrape time. Both run on their own threads with their own Redis client, so
a slow scrape or a slow Redis never holds up the supervisor's loop; /healthz
only reads the time of the loop's last tick.

These are the only threads alive when the supervisor forks a worker (preload
refuses modules that start threads). That is tolerable because a worker never
touches what they lock: their Redis clients, the Prometheus registry and the
HTTP server belong to the supervisor (forget_in_child closes the socket), and
logging re-creates its locks after a fork. A lock of the interpreter's own
that one of them held at the instant of a fork would still be inherited held;
moving the endpoint into a child process of its own would remove that risk.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from batchrun.definitions.config import Settings
from batchrun.definitions.registry import Registry
from batchrun.errors import BatchrunError, ConfigError, Location
from batchrun.runtime.supervisor import Supervisor
from batchrun.store.connection import client_for
from batchrun.store.events import READ_COUNT, EventReader
from batchrun.store.inspection import Inspector

log = logging.getLogger("batchrun.metrics")

OUTCOMES = {"succeeded": "succeeded", "failed": "failed", "dead": "dead", "cancelled": "cancelled",
            "retrying": "retried", "crashed": "crashed"}
ATTEMPT_ENDS = frozenset({"succeeded", "failed", "retrying"})
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, float("inf"))
MAX_STARTED = 100_000
TAIL_POLL_S = 0.25
REDIS_TIMEOUT_S = 2.0
STALE_TICK_S = 5.0


class EventTally:
    """Counts outcomes and attempt durations from the events stream, read in order from where it began."""

    def __init__(self, registry: CollectorRegistry, jobs: Iterable[str]) -> None:
        self.jobs_total = Counter("batchrun_jobs", "Jobs by definition and outcome (namespace-wide, since this "
                                  "supervisor started)", ["job", "outcome"], registry=registry)
        self.duration = Histogram("batchrun_job_duration_seconds", "Attempt duration, from taken to recorded",
                                  ["job"], buckets=DURATION_BUCKETS, registry=registry)
        for job in jobs:
            for outcome in OUTCOMES.values():
                self.jobs_total.labels(job, outcome)
            self.duration.labels(job)
        self.started: OrderedDict[str, float] = OrderedDict()

    def observe(self, event: dict[str, Any]) -> None:
        kind, job_id, job, ts = event.get("event"), event.get("id", ""), event.get("job", ""), event.get("ts")
        if not isinstance(ts, float):
            return
        if kind == "started":
            self.started[job_id] = ts
            if len(self.started) > MAX_STARTED:
                self.started.popitem(last=False)
            return
        if kind in OUTCOMES:
            self.jobs_total.labels(job, OUTCOMES[kind]).inc()
        if kind in ATTEMPT_ENDS or kind == "crashed":
            began = self.started.pop(job_id, None)
            if began is not None and kind in ATTEMPT_ENDS:
                self.duration.labels(job).observe(max(0.0, ts - began))


class EventTail(threading.Thread):
    """Feeds the tally, polling every TAIL_POLL_S and reading on at once while it is behind. A blocking
    read would wake this thread (and make Redis answer) after every script call: under a fast drain that
    cost the workers a quarter of their throughput. The stream keeps about event_history entries, so the
    tail keeps up while fewer than event_history / TAIL_POLL_S entries arrive per second.
    On a Redis error it waits and resumes after the last event it counted."""

    def __init__(self, reader: EventReader, tally: EventTally) -> None:
        super().__init__(name="batchrun-metrics-events", daemon=True)
        self.reader = reader
        self.tally = tally
        self.stopping = threading.Event()
        self.last = reader.last_id()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                events = self.reader.after(self.last)
            except BatchrunError as exc:
                log.debug("metrics: cannot read events yet: %s", exc)
                self.stopping.wait(1.0)
                continue
            for event in events:
                self.tally.observe(event)
                self.last = event["stream_id"]
            if len(events) < READ_COUNT:
                self.stopping.wait(TAIL_POLL_S)

    def stop(self) -> None:
        self.stopping.set()


class NamespaceGauges(Collector):
    """Read at scrape time, so the figures are as fresh as the scrape; batchrun_redis_up says if they could be."""

    def __init__(self, inspector: Inspector, queues: tuple[str, ...]) -> None:
        self.inspector = inspector
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("batchrun_redis_up", "1 if Redis answered this scrape")
        try:
            status = self.inspector.status(self.queues)
        except BatchrunError as exc:
            log.debug("metrics: cannot read the namespace: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("batchrun_queue_depth", "Jobs waiting in each queue", labels=["queue"])
        for queue, count in status["queues"].items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily("batchrun_in_flight", "Jobs taken by a worker and not yet recorded",
                                value=status["in_flight"])
        yield GaugeMetricFamily("batchrun_scheduled", "Delayed jobs and retries waiting for their time",
                                value=status["scheduled"])
        yield GaugeMetricFamily("batchrun_dead", "Jobs in the dead-letter list", value=status["dead"])
        yield GaugeMetricFamily("batchrun_workers", "Workers with a live heartbeat, on every host",
                                value=sum(1 for w in status["workers"] if w["alive"]))


@dataclass
class Health:
    """Healthy when the supervisor's loop ticked recently and Redis answers a PING."""

    last_tick: Callable[[], float]
    client: redis.Redis
    stale_after_s: float

    def check(self) -> str | None:
        """None when healthy, else the reason."""
        tick = self.last_tick()
        if tick == 0.0:
            return "the supervisor's loop has not started yet"
        age = time.monotonic() - tick
        if age > self.stale_after_s:
            return f"the supervisor's loop last ran {age:.1f}s ago (limit {self.stale_after_s:g}s)"
        try:
            self.client.ping()
        except (redis.RedisError, OSError) as exc:
            return f"Redis does not answer: {exc}"
        return None


class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(HTTPStatus.OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            problem = self.server.health.check()
            status = HTTPStatus.OK if problem is None else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, f"{problem or 'ok'}\n".encode(), "text/plain; charset=utf-8")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, health: Health) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.health = health


class Metrics:
    """The endpoint and the event tail of one supervisor; start() before its loop, stop() after."""

    def __init__(self, settings: Settings, redis_url: str, jobs: Iterable[str], last_tick: Callable[[], float]) -> None:
        disable_created_metrics()  # the *_created series only restate when this supervisor started
        self.client = client_for(redis_url, socket_timeout_s=REDIS_TIMEOUT_S, retries=1)
        self.registry = CollectorRegistry(auto_describe=False)
        self.tail = EventTail(EventReader(self.client, settings.namespace), EventTally(self.registry, jobs))
        self.registry.register(NamespaceGauges(Inspector(self.client, settings.namespace), settings.queues))
        stale = max(STALE_TICK_S, 2 * settings.promote_interval_s)
        self.server = MetricsServer((settings.metrics_host, settings.metrics_port or 0), self.registry,
                                    Health(last_tick, self.client, stale))
        self.thread = threading.Thread(target=self.server.serve_forever, name="batchrun-metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.tail.start()
        self.thread.start()
        log.info("metrics at http://%s:%d/metrics, health at /healthz", *self.address)

    def close_in_child(self) -> None:
        """A forked worker must not keep the endpoint's port bound (it never serves it)."""
        self.server.socket.close()

    def stop(self) -> None:
        self.tail.stop()
        self.server.shutdown()
        self.server.server_close()
        self.tail.join(timeout=2.0)
        self.client.close()


@contextmanager
def serving_metrics(settings: Settings, redis_url: str, registry: Registry, supervisor: Supervisor) -> Iterator[None]:
    """Serve the endpoint while the supervisor runs, when metrics_port is set."""
    if settings.metrics_port is None:
        yield
        return
    try:
        metrics = Metrics(settings, redis_url, registry.definitions, lambda: supervisor.last_tick)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
                          f"{exc.strerror or exc}", Location("settings", None, "metrics_port")) from None
    supervisor.release_in_child.append(metrics.close_in_child)
    metrics.start()
    try:
        yield
    finally:
        metrics.stop()
