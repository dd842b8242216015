"""Liveness (``GET /``, for a PaaS health check) and readiness (``GET /health/ready``)."""

from __future__ import annotations

import json

from aiohttp import web

from . import __version__
from .errors import error_response
from .keys import STORAGE
from .storage import Unavailable

# Liveness is polled constantly and never changes: build its body once.
_LIVE_BODY = json.dumps({"status": "ok", "service": "svc", "version": __version__}).encode()


async def liveness(request: web.Request) -> web.Response:
    return web.Response(body=_LIVE_BODY, content_type="application/json")


async def readiness(request: web.Request) -> web.Response:
    try:
        checks = await request.app[STORAGE].ping()
    except Unavailable as exc:
        return error_response(
            503, "unavailable", f"storage is not ready: {exc}", headers={"Retry-After": "1"}
        )
    return web.json_response({"status": "ready", "checks": checks})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", liveness)
    app.router.add_get("/health/ready", readiness)
