"""The dashboard's pages and actions (`batchrun dashboard`); JSON routes are in api.py.

Pages are rendered on the server from views.py's data, with autoescaping on:
params, results and errors are user data and never reach a page as markup.
Actions are POSTs that pass the Guard (CSRF, and the token when one is
needed), then redirect back to a page that says what happened.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchrun.errors import JobNotFound
from batchrun.surfaces import render as render_text
from batchrun.surfaces.client import Client
from batchrun.surfaces.dashboard import api, views
from batchrun.surfaces.dashboard.security import Guard

HERE = Path(__file__).parent
# No scripts, styles or frames from anywhere else, and never inside another site's frame: an action button
# must not be clickable through a page that hides it (CSRF tokens do not stop that).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CANCELLABLE = ("queued", "scheduled", "retrying", "running")
REQUEUEABLE = ("failed", "dead")


def _when(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "—" if ts in (None, "") else str(ts)
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _size(count: object) -> str:
    if not isinstance(count, int):
        return "—"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _duration(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters.update(when=_when, pretty=_pretty, size=_size, duration=_duration, quote=quote)
    return env


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    guard: Guard = request.app.state.guard
    client: Client = request.app.state.client
    page = request.app.state.templates.get_template(name).render(
        namespace=client.settings.namespace, csrf=guard.csrf_token(request), may_act=guard.may_act(request),
        read_only=guard.read_only, notice=request.query_params.get("done"), page=name, **context)
    response = HTMLResponse(page, status_code=status_code)
    guard.remember(request, response)
    return response


def overview_page(request: Request) -> Response:
    client = request.app.state.client
    data = views.overview(client)
    hosts: dict[str, list[dict[str, Any]]] = {}
    for worker in data["workers"]:
        hosts.setdefault(worker["host"], []).append(worker)
    return render(request, "overview.html", data=data, hosts=hosts, waiting=views.waiting(client))


def job_page(request: Request) -> Response:
    client = request.app.state.client
    job_id = request.path_params["job_id"]
    try:
        info = client.job(job_id)
    except JobNotFound:
        return render(request, "missing.html", status_code=404, job_id=job_id)
    order = [n for n in render_text.JOB_ORDER if n in info] + sorted(set(info) - set(render_text.JOB_ORDER))
    shown = {k: info[k] for k in order if k not in ("params", "result", "error", "traceback")}
    return render(request, "job.html", job=info, fields=shown, events=views.job_events(client, job_id),
                  can_cancel=info.get("state") in CANCELLABLE, can_requeue=info.get("state") in REQUEUEABLE)


def dead_page(request: Request) -> Response:
    return render(request, "dead.html", jobs=views.dead(request.app.state.client))


async def _guarded(request: Request) -> tuple[dict[str, str], Response | None]:
    form, refusal = await request.app.state.guard.check_action(request)
    return form, None if refusal is None else render(request, "refused.html", status_code=403, reason=refusal)


def _back(path: str, done: str) -> Response:
    return RedirectResponse(f"{path}?done={quote(done)}", status_code=303)


async def requeue_job(request: Request) -> Response:
    form, refused = await _guarded(request)
    if refused:
        return refused
    job_id = request.path_params["job_id"]
    result = (await run_in_threadpool(request.app.state.client.requeue, [job_id]))[job_id]
    done = {1: "requeued", 0: "not in the dead-letter list; nothing requeued", -1: "a malformed entry; cannot requeue"}
    return _back(f"/jobs/{quote(job_id)}", done[result])


async def cancel_job(request: Request) -> Response:
    form, refused = await _guarded(request)
    if refused:
        return refused
    job_id = request.path_params["job_id"]
    try:
        outcome = await run_in_threadpool(request.app.state.client.cancel, job_id)
    except JobNotFound:
        return render(request, "missing.html", status_code=404, job_id=job_id)
    done = {"cancelled": "cancelled", "cancelling": "cancelling: its worker is being stopped"}
    return _back(f"/jobs/{quote(job_id)}", done.get(outcome, "already ended; nothing to cancel"))


async def requeue_all(request: Request) -> Response:
    form, refused = await _guarded(request)
    if refused:
        return refused
    return _back("/dead", f"requeued {await run_in_threadpool(request.app.state.client.requeue_all)} jobs")


async def purge_dead(request: Request) -> Response:
    form, refused = await _guarded(request)
    if refused:
        return refused
    if form.get("confirm") != "yes":
        return _back("/dead", "nothing deleted: tick the box to confirm")
    deleted = await run_in_threadpool(request.app.state.client.purge_dead)
    return _back("/dead", f"deleted {deleted} dead-lettered jobs")


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def build_app(client: Client, guard: Guard) -> Starlette:
    routes = [
        Route("/", overview_page),
        Route("/jobs/{job_id}", job_page),
        Route("/dead", dead_page),
        Route("/jobs/{job_id}/requeue", requeue_job, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
        Route("/dead/requeue-all", requeue_all, methods=["POST"]),
        Route("/dead/purge", purge_dead, methods=["POST"]),
        *api.routes,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.client = client
    app.state.guard = guard
    app.state.templates = templates()
    return app
