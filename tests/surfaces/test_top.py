"""`batchrun top`: one frame with --once, and the live view under a pseudo-terminal until Ctrl-C."""
from __future__ import annotations

import os
import re
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.support.project import Project, wait_for

pytestmark = pytest.mark.timeout(60)


def test_once_prints_queues_workers_and_throughput(project: Project) -> None:
    project.supervise()
    done = project.submit("sleep", seconds=0.01)
    wait_for(lambda: project.state(done) == "succeeded", what="a job to succeed")
    for _ in range(3):
        project.submit("sleep-low", seconds=30)
    wait_for(lambda: project.processing_total() == 2, what="both workers to be busy")
    result = project.cli("top", "--once")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.search(r"queued 1 +running 2 +scheduled 0 +dead 0 +workers 2", result.stdout), result.stdout
    assert re.search(r"last hour 1 \(0 not succeeded\)", result.stdout), result.stdout
    assert [line.split("│")[2].strip() for line in lines if "│ low " in line] == ["1"]
    assert sum(1 for line in lines if "│ busy" in line) == 2


def test_live_view_redraws_in_a_terminal_and_stops_on_ctrl_c(project: Project) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "top", "--interval", "200ms"], cwd=project.root,
                            env={**project.env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"},
                            stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    project.processes.append(proc)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"queues (highest priority first)") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                seen += os.read(leader, 65536)
        assert seen.count(b"queues (highest priority first)") >= 2, seen[-2000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(leader)
