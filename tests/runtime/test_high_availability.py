"""Many hosts and high availability against real servers: a Sentinel failover in the middle of a run,
a Cluster, TLS (tests/support/servers.py starts them)."""
from __future__ import annotations

import pytest

from batchrun.errors import NotReplicated
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
        late = project.submit("sleep", seconds=0.01, tag="after")  # the same client follows the new master
        ids.append(late)
        tags.add("after")
        wait_for(lambda: _finished(project, tags) == JOBS + 1, timeout=30, what="a job submitted after the failover")
        states = project.client.wait(ids, timeout_s=30)
        assert set(states.values()) == {"succeeded"}
        assert "Traceback" not in project.supervisor_log()
    finally:
        factory.cleanup()


def test_a_cluster_runs_several_namespaces_spread_over_its_shards(tmp_path, servers):
    nodes = servers.cluster(3)
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes[:2])
    factory = ProjectFactory(tmp_path, url)
    try:
        projects = [factory() for _ in range(6)]
        owners = {nodes[0].client().cluster("keyslot", p.keys.wake) for p in projects}
        assert len(owners) == 6, "six namespaces, six hash slots"
        ids = {p: p.client.submit_many("sleep", [{"seconds": 0.01, "tag": f"{i}"} for i in range(20)])
               for p in projects[:3]}
        ids[projects[3]] = [projects[3].submit("sleep", seconds=0.01, tag="one")]
        for project in list(ids):
            project.supervise("--workers", "1", "--until-empty")
        for project, job_ids in ids.items():
            states = project.client.wait(job_ids, timeout_s=60)
            assert set(states.values()) == {"succeeded"}, project.supervisor_log()
        for command in (["status"], ["events"], ["dead"], ["submit", "noop"]):
            result = projects[0].cli(*command)
            assert result.returncode == 0, result.stderr
        shards = {_shard_of(nodes, p.keys.wake) for p in projects}
        assert len(shards) > 1, "the namespaces live on more than one shard"
        batch = projects[4].client.map("square", [{"n": n} for n in range(30)])
        projects[4].supervise("--workers", "1", "--until-empty")
        assert batch.wait(timeout_s=60) and [r["result"]["square"] for r in batch.results()] == [n * n for n in range(30)]
        cancelled = projects[5].client.map("square", [{"n": n} for n in range(5)])
        assert projects[5].cli("cancel", "--batch", cancelled.id).returncode == 0
        assert cancelled.progress()["counts"]["cancelled"] == 5
        durable = factory(min_replicas=1, replica_timeout="100ms")
        with pytest.raises(NotReplicated) as caught:
            durable.submit("noop")
        assert durable.state(caught.value.job_ids[0]) == "queued", "written to its shard all the same"
    finally:
        factory.cleanup()


def _shard_of(nodes, key: str) -> int:
    slot = nodes[0].client().cluster("keyslot", key)
    for start, end, master, *_ in nodes[0].client().cluster("slots"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"no shard holds slot {slot}")


def test_tls_with_an_acl_user_runs_jobs_and_never_shows_the_password(tmp_path, servers):
    server, ca = servers.tls("--user", "batch", "on", ">tls-s3cr3t", "~*", "&*", "+@all", "--user", "default", "off")
    url = f"rediss://batch:tls-s3cr3t@127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"
    factory = ProjectFactory(tmp_path, url)
    try:
        project = factory()
        tls_client = server.client(ssl=True, ssl_ca_certs=str(ca), username="batch", password="tls-s3cr3t")
        wait_for(lambda: _answers(tls_client), timeout=10, what="the TLS server")
        job_id = project.submit("sleep", seconds=0.01, tag="tls")
        assert project.supervise("--workers", "1", "--until-empty").wait(timeout=60) == 0, project.supervisor_log()
        assert project.state(job_id) == "succeeded"
        status = project.cli("status")
        plain = project.cli("status", "--redis-url", f"redis://batch:tls-s3cr3t@127.0.0.1:{server.port}/0")
    finally:
        factory.cleanup()
    assert status.returncode == 0 and plain.returncode == 4, "the TLS port refuses a plain connection"
    assert not [t for t in (status.stdout, status.stderr, plain.stderr, project.supervisor_log()) if "tls-s3cr3t" in t]


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
