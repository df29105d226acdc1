"""`batchrun dashboard`: pages, the JSON API contracts, escaping, CSRF and the token rules."""
from __future__ import annotations

import html
import json
import urllib.request

import pytest

from batchrun.surfaces.dashboard.security import Guard
from tests.support.project import Project, wait_for
from tests.surfaces.dashboard_support import Browser, dashboard_in_process, start_dashboard

pytestmark = pytest.mark.timeout(90)
SCRIPT = "<script>alert(1)</script>"


def test_pages_and_api_contracts(project: Project) -> None:
    job_id = project.submit("sleep", seconds=0.01, tag="waiting")
    browser = Browser(start_dashboard(project))
    status, page = browser.get("/")
    assert status == 200
    for queue in ("high", "default", "low"):
        assert f'data-queue="{queue}"' in page
    assert job_id in page
    status, body = browser.get("/api/overview")
    overview = json.loads(body)
    assert overview["queues"] == [{"name": "high", "depth": 0, "paused": False},
                                  {"name": "default", "depth": 1, "paused": False},
                                  {"name": "low", "depth": 0, "paused": False}]
    assert overview["workers"] == [] and overview["counts"]["queued"] == 1
    status, body = browser.get(f"/api/jobs/{job_id}")
    shown = project.cli("show", job_id, "--json")
    assert status == 200 and json.loads(body) == json.loads(shown.stdout)
    assert browser.get("/api/jobs/01nosuchjob000000000000")[0] == 404
    with urllib.request.urlopen(browser.base + "/") as reply:
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    status, page = browser.get("/jobs/01nosuchjob000000000000")
    assert status == 404 and "No job" in page


def test_workers_and_results_show_once_jobs_run(project: Project) -> None:
    browser = Browser(start_dashboard(project))
    project.supervise()
    job_id = project.submit("sleep", seconds=0.01, tag="done")
    wait_for(lambda: project.state(job_id) == "succeeded", what="the job to succeed")
    overview = json.loads(browser.get("/api/overview")[1])
    assert len(overview["workers"]) == 2 and all(w["alive"] and w["pid"] for w in overview["workers"])
    assert all(w["memory_bytes"] > 0 for w in overview["workers"])
    status, page = browser.get(f"/jobs/{job_id}")
    assert status == 200 and "state-succeeded" in page and "&#34;slept&#34;: 0.01" in page
    assert 'started' in page  # its events are listed
    minutes = json.loads(browser.get("/api/throughput")[1])["minutes"]
    assert len(minutes) == 60 and sum(m["succeeded"] for m in minutes) == 1


def test_params_results_and_errors_are_escaped(project: Project) -> None:
    browser = Browser(start_dashboard(project))
    project.supervise()
    echoed = project.submit("echo", word=SCRIPT)
    failed = project.submit("fail", tag=SCRIPT)
    wait_for(lambda: project.state(echoed) == "succeeded" and project.state(failed) == "failed",
             what="both jobs to end")
    for path in (f"/jobs/{echoed}", f"/jobs/{failed}", "/dead", "/"):
        status, page = browser.get(path)
        assert status == 200
        assert "<script>alert" not in page, path
    assert html.escape(SCRIPT) in browser.get(f"/jobs/{echoed}")[1]
    assert html.escape(f"boom {SCRIPT}") in browser.get("/dead")[1]


def test_actions_need_the_csrf_token(project: Project) -> None:
    browser = Browser(start_dashboard(project))
    job_id = project.submit("sleep", seconds=5)
    assert browser.post(f"/jobs/{job_id}/cancel", {})[0] == 403
    assert browser.post(f"/jobs/{job_id}/cancel", {"csrf": "forged"})[0] == 403
    assert project.state(job_id) == "queued"
    token = browser.csrf(f"/jobs/{job_id}")
    status, _ = browser.post(f"/jobs/{job_id}/cancel", {"csrf": token})
    assert status == 303 and project.state(job_id) == "cancelled"


def test_requeue_and_purge_from_the_dead_letter_page(project: Project) -> None:
    browser = Browser(start_dashboard(project))
    project.supervise()
    ids = [project.submit("fail", tag=str(i)) for i in range(3)]
    wait_for(lambda: all(project.state(i) == "failed" for i in ids), what="three jobs to fail")
    token = browser.csrf("/dead")
    assert browser.post(f"/jobs/{ids[0]}/requeue", {"csrf": token})[0] == 303
    wait_for(lambda: project.job(ids[0])["attempts"] == 1 and project.state(ids[0]) == "failed",
             what="the requeued job to run and fail again")
    assert browser.post("/dead/purge", {"csrf": token})[0] == 303  # not confirmed: nothing deleted
    assert project.client.inspector.dead_count() == 3
    assert browser.post("/dead/purge", {"csrf": token, "confirm": "yes"})[0] == 303
    assert project.client.inspector.dead_count() == 0


def test_binding_decides_who_may_act() -> None:
    assert not Guard.for_binding("127.0.0.1", None).read_only
    assert not Guard.for_binding("::1", None).read_only
    assert not Guard.for_binding("localhost", None).read_only
    assert Guard.for_binding("0.0.0.0", None).read_only
    assert Guard.for_binding("192.168.1.5", "").read_only
    assert not Guard.for_binding("0.0.0.0", "s3cret").read_only


def test_a_read_only_dashboard_shows_no_actions_and_refuses_them(project: Project) -> None:
    job_id = project.submit("sleep", seconds=5)
    with dashboard_in_process(project, Guard(token=None, read_only=True)) as base:
        browser = Browser(base)
        status, page = browser.get(f"/jobs/{job_id}")
        assert status == 200 and "read-only" in page and "<form" not in page
        cookie = next(c.value for c in browser.jar if c.name == "batchrun_csrf")
        status, page = browser.post(f"/jobs/{job_id}/cancel", {"csrf": cookie})
        assert status == 403 and "read-only" in page
    assert project.state(job_id) == "queued"


def test_a_token_dashboard_acts_only_for_holders_of_the_token(project: Project) -> None:
    job_id = project.submit("sleep", seconds=5)
    with dashboard_in_process(project, Guard(token="s3cret", read_only=False)) as base:
        stranger = Browser(base)
        page = stranger.get(f"/jobs/{job_id}")[1]
        assert "<form" not in page
        cookie = next(c.value for c in stranger.jar if c.name == "batchrun_csrf")
        assert stranger.post(f"/jobs/{job_id}/cancel", {"csrf": cookie})[0] == 403
        assert stranger.get(f"/jobs/{job_id}?token=wrong")[0] == 200
        assert "<form" not in stranger.get(f"/jobs/{job_id}")[1]
        assert project.state(job_id) == "queued"
        holder = Browser(base)
        holder.get(f"/jobs/{job_id}?token=s3cret")
        assert all(c.value != "s3cret" for c in holder.jar)  # the cookie holds an HMAC, not the token
        status, _ = holder.post(f"/jobs/{job_id}/cancel", {"csrf": holder.csrf(f"/jobs/{job_id}")})
        assert status == 303
    assert project.state(job_id) == "cancelled"

