"""Liveness (``GET /``, for a PaaS health check) and readiness (``GET /health/ready``)."""

from __future__ import annotations

import json

from aiohttp import web

from .. import __version__
from ..keys import BROKER, DRAIN, STORAGE
from ..storage import Unavailable
from . import routing
from .errors import error_response
from .operation import Reply, documented

# Liveness is polled constantly and never changes: build its body once.
_LIVE_BODY = json.dumps({"status": "ok", "service": "svc", "version": __version__}).encode()


@documented(
    summary="liveness: the process answers",
    tag="health",
    replies={200: Reply("the service runs", "Liveness")},
)
async def liveness(request: web.Request) -> web.Response:
    return web.Response(body=_LIVE_BODY, content_type="application/json")


@documented(
    summary="readiness: storage and the broker answer",
    tag="health",
    replies={200: Reply("storage and the broker answer", "Readiness")},
    errors=(503,),
)
async def readiness(request: web.Request) -> web.Response:
    drain = request.app[DRAIN]
    if drain.draining:
        # Before any check: a balancer must stop sending here even if all is well.
        return error_response(
            503,
            "draining",
            f"this process is shutting down: it drains for {drain.remaining():.1f} s more, "
            "then closes its sockets with 1001",
            headers={"Retry-After": "1"},
        )
    checks: dict[str, str] = {}
    down: list[str] = []
    for part, service in (("storage", request.app[STORAGE]), ("broker", request.app[BROKER])):
        try:
            checks.update(
                {f"{part}.{name}": state for name, state in (await service.ping()).items()}
            )
        except Unavailable as exc:
            down.append(f"{part} is not ready: {exc}")
    if down:
        return error_response(503, "unavailable", "; ".join(down), headers={"Retry-After": "1"})
    return web.json_response({"status": "ready", "checks": checks})


def setup_routes(app: web.Application) -> None:
    routing.add(app, "GET", "/", liveness)
    routing.add(app, "GET", "/health/ready", readiness)
