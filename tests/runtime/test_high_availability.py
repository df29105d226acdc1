"""Many hosts and high availability against real servers: a Sentinel failover in the middle of a run,
a Cluster, TLS (tests/support/servers.py starts them)."""
from __future__ import annotations

import pytest

from tests.support.project import ProjectFactory, wait_for
from tests.support.servers import wait_for_failover

pytestmark = pytest.mark.timeout(150)

JOBS = 200


def _finished(project, tags: set[str]) -> int:
    return len(tags & set(project.tags_run("end")))


def test_a_sentinel_failover_mid_run_loses_no_job(tmp_path, servers):
    """The master is SIGKILLed while 200 jobs run; the Sentinel promotes the replica; every job is done."""
    master, replica, sentinel = servers.sentinel_set()
    factory = ProjectFactory(tmp_path, f"redis+sentinel://127.0.0.1:{sentinel.port}/main")
    try:
        project = factory(heartbeat_ttl="10s", heartbeat_interval="1s")
        tags = {f"j{i}" for i in range(JOBS)}
        ids = [project.submit("sleep", seconds=0.05, tag=tag) for tag in sorted(tags)]
        project.supervise("--workers", "2")
        wait_for(lambda: _finished(project, tags) >= JOBS // 4, timeout=60, what="a quarter of the jobs to finish")
        master.kill()
        assert _finished(project, tags) < JOBS, "the master died while jobs were still to run"
        assert wait_for_failover(sentinel, "main", master.port) == replica.port
        wait_for(lambda: _finished(project, tags) == JOBS, timeout=90, what="every job to finish after the failover")
        states = project.client.wait(ids, timeout_s=30)
        assert set(states.values()) == {"succeeded"}
        assert "Traceback" not in project.supervisor_log()
    finally:
        factory.cleanup()
