"""The JSON API the pages read; /api/overview and /api/jobs/<id> are contracts (see the README)."""
from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchrun.errors import JobNotFound
from batchrun.surfaces.dashboard import views


class ORJSONResponse(JSONResponse):
    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def api_overview(request: Request) -> Response:
    return ORJSONResponse(views.overview(request.app.state.client))


def api_job(request: Request) -> Response:
    """The same fields as `batchrun show --json`; 404 for an unknown (or expired) id."""
    try:
        info = request.app.state.client.job(request.path_params["job_id"])
    except JobNotFound as exc:
        return ORJSONResponse({"error": str(exc)}, status_code=404)
    return ORJSONResponse(info)


def api_throughput(request: Request) -> Response:
    return ORJSONResponse(views.throughput(request.app.state.client))


routes = [
    Route("/api/overview", api_overview),
    Route("/api/jobs/{job_id}", api_job),
    Route("/api/throughput", api_throughput),
]
