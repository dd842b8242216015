"""How a request reaches svc: every route's handler is wrapped once, when it is added.

Around each handler, in this order (:func:`observed`): the request gets its id
(:mod:`.observe`), a compressed body is refused before anything reads it
(:mod:`.request_limits`), whatever the handler raises becomes the contract's JSON error
(:func:`.errors.answer`), and the status the client gets is recorded with the request's
metrics and access line.

Why not an aiohttp middleware: with any middleware at all, aiohttp builds a chain per
request (a cached lookup, a frame of its own around the chain, a context manager): 2.4 µs
of the 66.6 µs of CPU a GET of a cached user cost (bench/README.md, "GET on memory").  So
that nothing reaches aiohttp's own plain-text answers either, :func:`close_routes` gives
every resource a catch-all method answering 405 and the router a catch-all path answering
404, both through the same wrapper: they get the JSON error, the request id and the
metrics like any other answer, and a CORS preflight, on any path, is answered there.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import hdrs, web

from ..keys import DRAIN, METRICS, SETTINGS
from ..logs import request_id
from . import cors, errors, observe
from .request_limits import is_compressed, refuse_compressed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OBSERVED = "__svc_observed__"


def add(app: web.Application, method: str, path: str, handler: Handler) -> web.AbstractRoute:
    """Route ``method path`` to ``handler``, wrapped (``GET`` answers ``HEAD`` too)."""
    resource = app.router.add_resource(path)  # the path's resource, new or already there
    wrapped = observed(app, handler, resource)
    if method == hdrs.METH_GET:
        resource.add_route(hdrs.METH_HEAD, wrapped)
    return resource.add_route(method, wrapped)


def close_routes(app: web.Application) -> None:
    """After every route: unrouted methods and paths get svc's own 405 and 404.

    Refuses to start an app with a handler added without :func:`add` (it would answer
    without a request id, metrics or the contract's errors).
    """
    for route in app.router.routes():
        if not getattr(route.handler, _OBSERVED, False):
            raise RuntimeError(f"{route.method} {route.resource} is not added by routing.add")
    method_not_allowed = observed(app, _unrouted_method, None)
    for resource in list(app.router.resources()):
        resource.add_route(hdrs.METH_ANY, method_not_allowed)
    # [\s\S], not ".": a path may hold a decoded newline (/users/%0A), which "." skips.
    app.router.add_route(hdrs.METH_ANY, r"/{path:[\s\S]*}", observed(app, _unrouted_path, None))


def observed(
    app: web.Application, handler: Handler, resource: web.AbstractResource | None
) -> Handler:
    """``handler`` with the request id, the 415, the JSON errors and the metrics around it.

    ``resource`` is what the metrics file the request under (``None``: ``unmatched``, for
    svc's own 404 and 405, as aiohttp's would have been).  It, the app's histogram and its
    access-log setting are bound here, not looked up per request (each Python call or
    ``app[key]`` saved is ~0.3 % of a cached GET's instructions).
    """
    histogram = app[METRICS].requests
    access_log = app[SETTINGS].access_log
    drain = app[DRAIN]

    @functools.wraps(handler)
    async def observed_handler(request: web.Request) -> web.StreamResponse:
        rid = request.headers.get(observe.REQUEST_ID_HEADER)
        if rid is None or not observe.is_sane_id(rid):
            rid = observe.new_request_id()
        # No reset: aiohttp runs each request in a task of its own, with a copy of the
        # context (aiohttp's "contextvars support"), so the id ends with the request's task.
        request_id.set(rid)
        started = perf_counter()
        status = 500
        try:
            try:
                # One lookup for nearly every request; is_compressed only with the header.
                if hdrs.CONTENT_ENCODING in request.headers and is_compressed(request):
                    await refuse_compressed(request)
                response = await handler(request)
            except Exception as exc:  # an answer, or an HTTPException raised on to aiohttp
                response = await errors.answer(request, exc)
            status = response.status
            response.headers[observe.REQUEST_ID_HEADER] = rid
            if drain.started is not None and status != 101:
                # Draining (svc/drain.py): the connection closes after this answer, so no
                # idle keep-alive connection of a balancer is left to be cut at the end.
                response.force_close()
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[observe.REQUEST_ID_HEADER] = rid
            if drain.started is not None:
                exc.force_close()
            raise
        finally:
            duration = perf_counter() - started
            histogram.observe(resource, request.method, status, duration)
            if access_log:
                observe.log_access(request, status, duration)

    setattr(observed_handler, _OBSERVED, True)
    return observed_handler


async def _unrouted_method(request: web.Request) -> web.StreamResponse:
    if (preflight := cors.preflight(request)) is not None:
        return preflight
    resource = request.match_info.route.resource
    allowed = {route.method for route in resource} - {hdrs.METH_ANY}
    raise web.HTTPMethodNotAllowed(request.method, allowed)


async def _unrouted_path(request: web.Request) -> web.StreamResponse:
    if (preflight := cors.preflight(request)) is not None:
        return preflight
    raise web.HTTPNotFound()
