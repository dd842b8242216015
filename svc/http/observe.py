"""What operators see of each request: its id, its metrics, its access line (svc's
middleware, :mod:`svc.http.middleware`, calls these around every handler).

- **Request id**: the request's own ``X-Request-ID`` when it is sane (1 to 64
  of ``[A-Za-z0-9._-]``), else a new one; sent back as ``X-Request-ID`` and
  stamped on every log line written while serving it (:mod:`svc.logs`).
- **Metrics**: the duration of each request by route, method and status
  (:mod:`svc.http.metrics`).
- **Access log** (``ACCESS_LOG=true``): one line per request (method, path
  without its query, status, duration); a WebSocket's open and close
  (room, duration, close code) are logged by ``svc.rooms.ws``.

The middleware records the status clients get, after errors have been answered.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from time import perf_counter

from aiohttp import web

from ..keys import METRICS, SETTINGS

access_log = logging.getLogger("svc.access")

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Process prefix + counter: unique, cheap, and says nothing about the server's state.
_PREFIX = f"{os.getpid():x}-{os.urandom(3).hex()}-"
_counter = itertools.count(1)


def request_id_for(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID")
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}{next(_counter):x}"


def finish(request: web.Request, status: int, started: float) -> None:
    """What is recorded once a request is answered: its metrics, and its access line."""
    duration = perf_counter() - started
    app = request.app
    app[METRICS].observe_request(request, status, duration)
    if app[SETTINGS].access_log:
        _log_access(request, status, duration)


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
