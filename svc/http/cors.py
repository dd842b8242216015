"""CORS for every answer svc gives, from the allow-list of :mod:`svc.http.origins`.

Two pieces, both asked by svc's one middleware (:mod:`.middleware`), both only when
``CORS_ORIGINS`` or ``CORS_ORIGIN_REGEX`` is set:

- every preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``),
  on any path, is answered with *every* method and header the API accepts, so a
  browser's one cached preflight per URL covers every write (an ``If-Match`` PUT after
  a plain one is not preflighted again).  No route has ``OPTIONS``: the middleware asks
  :func:`preflight` before any handler;
- :func:`allow` lets an allowed page read every other answer, errors and
  router 404/405s included, and marks each answer ``Vary: Origin`` (it depends
  on the origin), except with ``CORS_ORIGINS=*``, where the answer is ``*`` for all.

(This replaced aiohttp-cors, which treats an empty exact-origin table as "no
CORS" whatever the regex says, and echoes only the method asked for.)
"""

from __future__ import annotations

from aiohttp import hdrs, web

from .errors import error_response
from .origins import OriginPolicy
from .vary import add_vary

# The request headers clients send: JSON bodies, bearer tokens, optimistic concurrency.
ALLOW_HEADERS = ("Content-Type", "Authorization", "If-Match", "If-None-Match")
# Headers a browser script may read: the version (ETag) and where a new user lives.
EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "WWW-Authenticate")
# GET and HEAD (and a JSON POST) need a preflight too once they carry Authorization.
ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
# Browsers cache a preflight for up to this long (Chrome caps it at 2 hours).
MAX_AGE = 600

_ALLOWED_HEADER_NAMES = frozenset(h.lower() for h in ALLOW_HEADERS)


def preflight(policy: OriginPolicy, request: web.Request) -> web.Response | None:
    """The answer to a CORS preflight, or None when this is not one (CORS on)."""
    headers = request.headers
    if (
        request.method != hdrs.METH_OPTIONS
        or hdrs.ORIGIN not in headers
        or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in headers
    ):
        return None
    return _answer_preflight(policy, request)


def _answer_preflight(policy: OriginPolicy, request: web.Request) -> web.Response:
    origins = request.headers.getall(hdrs.ORIGIN)
    if len(origins) > 1:
        return _refused("more than one Origin header")
    origin = origins[0]
    if not policy.allows(origin):
        return _refused(f"the origin {origin[:200]!r} is not allowed")
    method = request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD].strip()
    if method not in ALLOW_METHODS:
        return _refused(f"the method {method[:20]!r} is not allowed; use one of {ALLOW_METHODS}")
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
    for name in (h.strip().lower() for h in asked.split(",")):
        if name and name not in _ALLOWED_HEADER_NAMES:
            return _refused(f"the header {name[:40]!r} is not allowed; send only {ALLOW_HEADERS}")
    response = web.Response(status=200)
    response.headers.update(
        {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*" if policy.any else origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(ALLOW_METHODS),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(ALLOW_HEADERS),
            hdrs.ACCESS_CONTROL_MAX_AGE: str(MAX_AGE),
        }
    )
    return response


def _refused(message: str) -> web.Response:
    # Without any Access-Control-Allow-* header: the browser then blocks the request.
    return error_response(403, "forbidden", f"CORS preflight refused: {message}")


def allow(policy: OriginPolicy, request: web.Request, headers, status: int) -> None:
    """Let an allowed page read this answer (CORS on): ``headers`` are the answer's."""
    if status == 101:
        return  # a WebSocket: not CORS's business (see svc.http.ws for its origin check)
    if not policy.any:
        add_vary(headers, "Origin")
    if hdrs.ACCESS_CONTROL_ALLOW_ORIGIN in headers:
        return  # a preflight answer, complete already
    origins = request.headers.getall(hdrs.ORIGIN, ())
    if len(origins) != 1 or request.method == hdrs.METH_OPTIONS and status == 403:
        return  # none, or two (a browser sends one): nothing to allow
    origin = origins[0]
    if policy.allows(origin):
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*" if policy.any else origin
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(EXPOSE_HEADERS)
