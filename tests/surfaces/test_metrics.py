"""`supervise --metrics-port`: Prometheus counts from the events stream, gauges read at scrape time, /healthz."""
from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request

import psutil
import pytest
from prometheus_client import CollectorRegistry

from batchrun.store.connection import client_for
from batchrun.surfaces.metrics import EventTally, Health
from tests.support.project import Project, wait_for

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def serve(project: Project, *args: str) -> str:
    port = free_port()
    project.supervise("--metrics-port", str(port), *args)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/healthz")[0] == 200, what="/healthz to answer 200")
    return base


def test_counts_twenty_jobs_and_reads_gauges(project: Project) -> None:
    base = serve(project)
    ids = [project.submit("sleep", seconds=0.01, tag=str(i)) for i in range(20)]
    wait_for(lambda: all(project.state(i) == "succeeded" for i in ids), what="20 jobs to succeed")
    text = wait_for(lambda: (t := get(base + "/metrics")[1]) and
                    sample(t, "batchrun_jobs_total", job="sleep", outcome="succeeded") == 20 and t,
                    what="/metrics to count 20 successes")
    assert sample(text, "batchrun_jobs_total", outcome="succeeded") == 20
    assert sample(text, "batchrun_job_duration_seconds_count", job="sleep") == 20
    assert sample(text, "batchrun_job_duration_seconds_sum", job="sleep") >= 0.2
    assert "batchrun_queue_depth{queue=\"default\"} 0.0" in text
    assert sample(text, "batchrun_workers") == 2
    for name in ("batchrun_in_flight", "batchrun_scheduled", "batchrun_dead"):
        assert re.search(rf"^{name} 0\.0$", text, re.M), name
    status, body = get(base + "/healthz")
    assert (status, body) == (200, "ok\n")


def test_counts_failures_retries_crashes_and_depth(make_project) -> None:
    project = make_project(workers=1)
    base = serve(project)
    project.submit("fail-retried", tag="f")
    project.submit("crash", tag="c")
    text = wait_for(lambda: (t := get(base + "/metrics")[1]) and
                    sample(t, "batchrun_jobs_total", job="crash", outcome="dead") == 1 and
                    sample(t, "batchrun_jobs_total", job="fail-retried", outcome="failed") == 1 and t,
                    timeout=40, what="the failing and crashing jobs to end")
    assert sample(text, "batchrun_jobs_total", job="fail-retried", outcome="retried") == 2
    assert sample(text, "batchrun_jobs_total", job="crash", outcome="crashed") == 3
    assert sample(text, "batchrun_dead") == 2


def test_depth_and_in_flight_while_the_only_worker_is_busy(make_project) -> None:
    project = make_project(workers=1)
    base = serve(project)
    busy = project.submit("hang", tag="busy")
    wait_for(lambda: project.state(busy) == "running", what="the blocking job to start")
    for _ in range(3):
        project.submit("sleep-low", seconds=0.01)
    text = get(base + "/metrics")[1]
    assert sample(text, "batchrun_queue_depth", queue="low") == 3
    assert sample(text, "batchrun_queue_depth", queue="default") == 0
    assert sample(text, "batchrun_in_flight") == 1
    project.client.cancel(busy)
    wait_for(lambda: sample(get(base + "/metrics")[1], "batchrun_jobs_total", outcome="succeeded") == 3,
             what="the three queued jobs to run once the worker is free")
    assert sample(get(base + "/metrics")[1], "batchrun_jobs_total", job="hang", outcome="cancelled") == 1


def test_health_reports_a_stale_loop_and_an_unreachable_redis(redis_url: str) -> None:
    client = client_for(redis_url)
    try:
        assert Health(lambda: 0.0, client, 5.0).check() == "the supervisor's loop has not started yet"
        assert Health(time.monotonic, client, 5.0).check() is None
        stale = Health(lambda: time.monotonic() - 30, client, 5.0).check()
        assert stale is not None and "last ran 30" in stale
    finally:
        client.close()
    gone = client_for(f"redis://127.0.0.1:{free_port()}", socket_timeout_s=0.5, retries=0)
    problem = Health(time.monotonic, gone, 5.0).check()
    assert problem is not None and problem.startswith("Redis does not answer")


def test_tally_pairs_starts_with_ends() -> None:
    registry = CollectorRegistry()
    tally = EventTally(registry, ["a"])
    for event in ({"event": "started", "id": "1", "job": "a", "ts": 10.0},
                  {"event": "retrying", "id": "1", "job": "a", "ts": 12.0},
                  {"event": "started", "id": "1", "job": "a", "ts": 13.0},
                  {"event": "succeeded", "id": "1", "job": "a", "ts": 13.5},
                  {"event": "started", "id": "2", "job": "a", "ts": 14.0},
                  {"event": "crashed", "id": "2", "job": "a", "ts": 15.0},
                  {"event": "cancelled", "id": "3", "job": "a", "ts": 15.0}):
        tally.observe(event)
    value = registry.get_sample_value
    assert value("batchrun_jobs_total", {"job": "a", "outcome": "succeeded"}) == 1
    assert value("batchrun_jobs_total", {"job": "a", "outcome": "retried"}) == 1
    assert value("batchrun_jobs_total", {"job": "a", "outcome": "crashed"}) == 1
    assert value("batchrun_jobs_total", {"job": "a", "outcome": "cancelled"}) == 1
    assert value("batchrun_job_duration_seconds_count", {"job": "a"}) == 2
    assert value("batchrun_job_duration_seconds_sum", {"job": "a"}) == 2.5
    assert tally.started == {}


def test_port_in_use_is_a_clear_config_error(project: Project) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = project.cli("supervise", "--metrics-port", str(busy.getsockname()[1]), "--until-empty")
    assert result.returncode == 3
    assert "metrics_port" in result.stderr and "cannot serve metrics" in result.stderr


def test_bad_metrics_port_names_the_flag(project: Project) -> None:
    result = project.cli("supervise", "--metrics-port", "99999", "--until-empty")
    assert result.returncode == 3
    assert "--metrics-port" in result.stderr and "65535" in result.stderr


def test_workers_do_not_hold_the_metrics_port(project: Project) -> None:
    base = serve(project)
    port = int(base.rsplit(":", 1)[1])
    supervisor = psutil.Process(project.processes[-1].pid)
    workers = wait_for(lambda: len(kids := supervisor.children()) == 2 and kids, what="two workers")
    for worker in workers:
        assert all(c.laddr.port != port for c in worker.net_connections(kind="tcp") if c.laddr)
    assert any(c.laddr.port == port for c in supervisor.net_connections(kind="tcp") if c.laddr)
