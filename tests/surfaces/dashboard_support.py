"""Helpers for the dashboard tests: a real `batchrun dashboard` process, an in-process one, and a browser-ish
HTTP client that keeps cookies."""
from __future__ import annotations

import http.cookiejar
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.project import Project, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """urllib with a cookie jar and no redirect following, so tests see each answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST"))

    def csrf(self, path: str) -> str:
        status, page = self.get(path)
        assert status == 200, (status, page)
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, "the page has no action form"
        return match.group(1)

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def start_dashboard(project: Project, *args: str) -> str:
    """`batchrun dashboard` in the project's folder; returns its base URL once it answers."""
    port = free_port()
    log = open(project.root / f"dashboard-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "dashboard", "--port", str(port), *args],
                            cwd=project.root, env=project.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    project.processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base) or _exited(proc, project.root / f"dashboard-{port}.log"),
             what="the dashboard to answer")
    return base


def _exited(proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the dashboard exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
    return False


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/overview", timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def dashboard_in_process(project: Project, guard: object) -> Iterator[str]:
    """The app with a chosen Guard, served by uvicorn on a thread (still on 127.0.0.1)."""
    import uvicorn

    from batchrun.surfaces.dashboard.app import build_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(project.client, guard), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
