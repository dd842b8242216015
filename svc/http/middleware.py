"""svc's one middleware: every request passes here, once.

Around each handler, in this order: the request gets its id (:mod:`.observe`), a
compressed body is refused before anything reads it (:mod:`.request_limits`), whatever
the handler raises becomes the contract's JSON error (:func:`.errors.answer`), and the
status the client gets is recorded with the request's metrics and access line.

One middleware, not one per concern: aiohttp runs each as a coroutine wrapping the next,
so each is a frame and an await per request.  The body below is ~8 % of the CPU of a GET
of a cached user (bench/README.md, "Interleaved"): keep it this small.
"""

from __future__ import annotations

from time import perf_counter

from aiohttp import web

from ..logs import request_id
from . import errors, observe
from .request_limits import is_compressed, refuse_compressed


@web.middleware
async def middleware(request: web.Request, handler) -> web.StreamResponse:
    rid = observe.request_id_for(request)
    token = request_id.set(rid)
    started = perf_counter()
    status = 500
    try:
        try:
            if is_compressed(request):
                await refuse_compressed(request)
            response = await handler(request)
        except Exception as exc:  # an answer, or an HTTPException raised on to aiohttp
            response = await errors.answer(request, exc)
        status = response.status
        response.headers["X-Request-ID"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-ID"] = rid
        raise
    finally:
        observe.finish(request, status, started)
        request_id.reset(token)
