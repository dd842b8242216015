"""The one aiohttp middleware: every request, routed or not, passes through :func:`observe`.

One route does the part after its handler itself: the WebSocket route
(:func:`observes_itself`), whose answer lives as long as its socket; the middleware then
sets the request id and hands it the request, so none of its frames waits under a socket.

Around the handler aiohttp matched, in this order:

- the request gets its id (:mod:`.observe`): the client's own ``X-Request-ID`` when sane,
  else a new one, set for every log line written while serving it and sent back;
- a compressed body is refused before anything reads it (:mod:`.request_limits`);
- a CORS preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``), on
  any path, is answered here (:func:`.cors.preflight`): no route has ``OPTIONS``;
- whatever the handler raises becomes the contract's JSON error (:func:`.errors.answer`),
  aiohttp's own 404 and 405 (with ``Allow``) included: for a path or method no route has,
  aiohttp's "handler" is one that raises them;
- an allowed page may read the answer (:func:`.cors.allow`), errors included;
- while the process drains (svc/drain.py) the connection closes after the answer;
- the status the client gets is recorded in the request's metrics, under its route's
  template (``/users/{user_id}``, never the raw path: one series per route, not per id;
  ``unmatched`` for aiohttp's 404 and 405), and in its access line.

The price, measured side by side against the per-route wrapper this replaced (bench/README.md,
"House, second cut (issue 26): house-http"): aiohttp builds the handler chain per request
(a cached lookup and a frame of its own), a few µs of a GET's ~66 µs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import hdrs, web

from ..keys import DRAIN, METRICS, ORIGINS, SETTINGS
from ..logs import request_id
from . import cors, errors, observe
from .request_limits import is_compressed, refuse_compressed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: Handlers that observe their own answer (:func:`observes_itself`).
_SELF_OBSERVED: set[Handler] = set()


def observes_itself(handler: Handler) -> Handler:
    """Mark ``handler`` as one whose answer lives long (a WebSocket's, for the socket's
    life): the middleware sets the request id and calls it as it is, and it does the rest of
    what the middleware does itself (:func:`before_socket`, :func:`answered_socket`,
    :func:`raised_socket`, :func:`record_socket`).  The middleware's own frame, awaiting it,
    would live as long as the socket: ~380 B of every idle one (bench/memory_per_socket.py)."""
    _SELF_OBSERVED.add(handler)
    return handler


def observe_requests(app: web.Application) -> Callable:
    """The middleware for ``app``; its metrics, settings, drain and origin policy are set.

    They are bound here, not looked up per request (each Python call or ``app[key]`` saved
    is ~0.3 % of a cached GET's instructions)."""
    histogram = app[METRICS].requests
    access_log = app[SETTINGS].access_log
    drain = app[DRAIN]
    policy = app[ORIGINS]
    cors_on = policy.enabled
    self_observed = _SELF_OBSERVED

    @web.middleware
    def observed(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # Not a coroutine: what it returns is awaited by aiohttp, so a handler that observes
        # itself runs with no frame of the middleware around it.
        rid = request.headers.get(observe.REQUEST_ID_HEADER)
        if rid is None or not observe.is_sane_id(rid):
            rid = observe.new_request_id()
        # No reset: aiohttp runs each request in a task of its own, with a copy of the
        # context (aiohttp's "contextvars support"), so the id ends with the request's task.
        request_id.set(rid)
        if handler in self_observed:
            return handler(request)
        return answer(request, handler, rid)

    async def answer(request: web.Request, handler: Handler, rid: str) -> web.StreamResponse:
        # What a self-observing handler does itself (the functions below): kept in step.
        started = perf_counter()
        status = 500
        try:
            try:
                # One lookup for nearly every request; is_compressed only with the header.
                if hdrs.CONTENT_ENCODING in request.headers and is_compressed(request):
                    await refuse_compressed(request)
                if cors_on and (preflight := cors.preflight(policy, request)) is not None:
                    response: web.StreamResponse = preflight
                else:
                    response = await handler(request)
            except Exception as exc:  # an answer, or an HTTPException raised on to aiohttp
                response = await errors.answer(request, exc)
            status = response.status
            response.headers[observe.REQUEST_ID_HEADER] = rid
            if cors_on:
                cors.allow(policy, request, response.headers, status)
            if drain.started is not None and status != 101:
                # Draining (svc/drain.py): the connection closes after this answer, so no
                # idle keep-alive connection of a balancer is left to be cut at the end.
                response.force_close()
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[observe.REQUEST_ID_HEADER] = rid
            if cors_on:
                cors.allow(policy, request, exc.headers, status)
            if drain.started is not None:
                exc.force_close()
            raise
        finally:
            duration = perf_counter() - started
            # A SystemRoute (aiohttp's 404 and 405) has no resource: "unmatched".
            histogram.observe(request.match_info.route.resource, request.method, status, duration)
            if access_log:
                observe.log_access(request, status, duration)

    return observed


# -- the same, for a handler that observes itself (observes_itself) ----------------------------
# Its route is a GET (and HEAD): a CORS preflight (OPTIONS) never reaches it.


async def before_socket(request: web.Request) -> None:
    """Before the handler's own work: a compressed body is refused (415)."""
    if hdrs.CONTENT_ENCODING in request.headers and is_compressed(request):
        await refuse_compressed(request)


def answered_socket(request: web.Request, response: web.StreamResponse) -> int:
    """The handler's answer (or its error's): its request id, CORS and drain headers, as the
    middleware sets them; the status to record."""
    status = response.status
    response.headers[observe.REQUEST_ID_HEADER] = request_id.get()
    policy = request.app[ORIGINS]
    if policy.enabled:
        cors.allow(policy, request, response.headers, status)
    if request.app[DRAIN].started is not None and status != 101:
        response.force_close()
    return status


def raised_socket(request: web.Request, exc: web.HTTPException) -> int:
    """An HTTPException raised on to aiohttp: headers as the middleware sets them."""
    exc.headers[observe.REQUEST_ID_HEADER] = request_id.get()
    policy = request.app[ORIGINS]
    if policy.enabled:
        cors.allow(policy, request, exc.headers, exc.status)
    if request.app[DRAIN].started is not None:
        exc.force_close()
    return exc.status


def record_socket(request: web.Request, status: int, duration: float) -> None:
    """The request's metrics and access line, as the middleware records them."""
    app = request.app
    app[METRICS].requests.observe(
        request.match_info.route.resource, request.method, status, duration
    )
    if app[SETTINGS].access_log:
        observe.log_access(request, status, duration)
