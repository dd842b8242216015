"""What operators see of each request: its id, its metrics, its access line (svc's one
middleware, :mod:`svc.http.middleware`, calls these).

- **Request id**: the request's own ``X-Request-ID`` when it is sane (1 to 64
  of ``[A-Za-z0-9._-]``), else a new one; sent back as ``X-Request-ID`` and
  stamped on every log line written while serving it (:mod:`svc.logs`).
- **Metrics**: the duration of each request by route, method and status
  (:mod:`svc.http.metrics`).
- **Access log** (``ACCESS_LOG=true``): one line per request (method, path
  without its query, status, duration); a WebSocket's open and close
  (room, duration, close code) are logged by ``svc.http.ws``.

The middleware records the status clients get, after errors have been answered.
"""

from __future__ import annotations

import itertools
import logging
import os
import re

from aiohttp import web
from multidict import istr

access_log = logging.getLogger("svc.access")


#: The header's name as an istr: the headers' case-insensitive dict need not fold it again.
REQUEST_ID_HEADER = istr("X-Request-ID")


#: Is a client's own request id fit to log and send back?
is_sane_id = re.compile(r"[A-Za-z0-9._-]{1,64}").fullmatch


#: A new request id: process prefix + counter, unique, and says nothing about the server's
#: state.  A C iterator's ``__next__``: no Python frame per request.
new_request_id = map(
    f"{os.getpid():x}-{os.urandom(3).hex()}-{{:x}}".format, itertools.count(1)
).__next__


def log_access(request: web.Request, status: int, duration: float) -> None:
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
