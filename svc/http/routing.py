"""How a route is added: ``routing.add(app, method, path, handler)``.

A thin helper over aiohttp's router, kept so each module's ``setup_routes`` reads alike: a
``GET`` answers ``HEAD`` too.  What every answer carries (request id, JSON errors, metrics,
CORS) comes from svc's one middleware (:mod:`.middleware`), whichever way a route was
added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add(app: web.Application, method: str, path: str, handler: Handler) -> web.AbstractRoute:
    """Route ``method path`` to ``handler`` (``GET`` answers ``HEAD`` too)."""
    resource = app.router.add_resource(path)  # the path's resource, new or already there
    if method == hdrs.METH_GET:
        resource.add_route(hdrs.METH_HEAD, handler)
    return resource.add_route(method, handler)
