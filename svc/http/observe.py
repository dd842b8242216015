"""One middleware for what operators see of each request: its id, its metrics, its access line.

- **Request id**: the request's own ``X-Request-ID`` when it is sane (1 to 64
  of ``[A-Za-z0-9._-]``), else a new one; sent back as ``X-Request-ID`` and
  stamped on every log line written while serving it (:mod:`svc.logs`).
- **Metrics**: the duration of each request by route, method and status
  (:mod:`svc.http.metrics`).
- **Access log** (``ACCESS_LOG=true``): one line per request (method, path
  without its query, status, duration); a WebSocket's open and close
  (room, duration, close code) are logged by ``svc.rooms.ws``.

It sits outside the error middleware, so it sees the status clients get.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from time import perf_counter

from aiohttp import web

from ..keys import METRICS, SETTINGS
from ..logs import request_id

access_log = logging.getLogger("svc.access")

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Process prefix + counter: unique, cheap, and says nothing about the server's state.
_PREFIX = f"{os.getpid():x}-{os.urandom(3).hex()}-"
_counter = itertools.count(1)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID")
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}{next(_counter):x}"


# Every request passes here: ~1.6 µs in a tight loop, but ~9 % of a GET of a cached user
# in a running server (bench/README.md "Rooms and memory"); keep it this small.
@web.middleware
async def observe_middleware(request: web.Request, handler) -> web.StreamResponse:
    rid = _request_id(request)
    token = request_id.set(rid)
    started = perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-ID"] = rid
        raise
    finally:
        duration = perf_counter() - started
        app = request.app
        app[METRICS].observe_request(request, status, duration)
        if app[SETTINGS].access_log:
            _log_access(request, status, duration)
        request_id.reset(token)


def _log_access(request: web.Request, status: int, duration: float) -> None:
    ms = round(duration * 1000, 2)
    if status == 101:  # a WebSocket: the rooms log its open and its close
        return
    access_log.info(
        "%s %s %d %.2f ms",
        request.method,
        request.path,
        status,
        ms,
        extra={"method": request.method, "path": request.path, "status": status, "duration_ms": ms},
    )
