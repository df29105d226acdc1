"""min_replicas: a submit returns only once that many replicas hold the job (store/durability.py)."""
from __future__ import annotations

import pytest

from batchrun.errors import NotReplicated
from tests.support.project import ProjectFactory, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def replicated(tmp_path, servers):
    master = servers.redis()
    replica = servers.redis("--replicaof", "127.0.0.1", str(master.port))
    factory = ProjectFactory(tmp_path, f"redis://127.0.0.1:{master.port}/0")
    yield factory, master, replica
    factory.cleanup()


def _synced(replica) -> bool:
    return replica.client().info("replication").get("master_link_status") == "up"


def test_a_durable_submit_is_on_the_replica_when_it_returns(replicated):
    factory, master, replica = replicated
    project = factory(min_replicas=1)
    wait_for(lambda: _synced(replica), what="the replica to sync")
    job_id = project.submit("noop")
    assert replica.client().exists(project.keys.job(job_id))
    ids = project.client.submit_many("noop", [{}] * 50)
    assert all(replica.client().exists(project.keys.job(j)) for j in ids[-1:])


def test_too_few_replicas_fail_the_submit_naming_the_jobs_written(replicated):
    factory, master, replica = replicated
    project = factory(min_replicas=2, replica_timeout="200ms")
    with pytest.raises(NotReplicated) as caught:
        project.submit("noop")
    [job_id] = caught.value.job_ids
    assert project.state(job_id) == "queued", "written to the master all the same"
    result = project.cli("submit", "noop")
    assert result.returncode == 4 and "min_replicas=2" in result.stderr


def test_min_replicas_must_be_a_whole_number(project):
    project.write_config(min_replicas=-1)
    result = project.cli("status")
    assert result.returncode == 3 and "min_replicas" in result.stderr
