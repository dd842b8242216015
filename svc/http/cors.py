"""CORS for every route: aiohttp-cors, plus the one thing it cannot do, origins by regex.

aiohttp-cors answers preflights and decorates responses (error responses too:
it hooks ``on_response_prepare``), looking the request's ``Origin`` up in a
mapping of origin to options.  What it cannot do is added here, and only that:

- it only knows exact origins and ``*``, so the mapping given to it also
  answers, for any origin that fully matches ``CORS_ORIGIN_REGEX``;
- it only knows routed resources, so a 404/405 from the router itself (no
  such path, method not allowed) is decorated here, so a browser script can
  read the error;
- it echoes the origin without ``Vary: Origin``, which a shared cache needs.

With neither setting there is no CORS at all: no preflight routes and no
per-response work.
"""

from __future__ import annotations

import re

import aiohttp_cors
from aiohttp import hdrs, web
from aiohttp_cors.urldispatcher_router_adapter import ResourcesUrlDispatcherRouterAdapter

from ..settings import Settings

# The request headers clients send: JSON bodies, bearer tokens, optimistic concurrency.
ALLOW_HEADERS = ("Content-Type", "Authorization", "If-Match", "If-None-Match")
# Headers a browser script may read: the version (ETag) and where a new user lives.
EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "WWW-Authenticate")
ALLOW_METHODS = ("GET", "POST", "PUT", "DELETE")
# Browsers cache a preflight for up to this long, sparing one round trip per write.
MAX_AGE = 600


class RegexOrigins(dict):
    """Origin → options, where origins matching ``pattern`` are present too.

    aiohttp-cors reads it with ``in``, ``[]`` and ``get`` (through a ChainMap),
    so those are what is extended; the exact origins stay ordinary entries.
    """

    def __init__(self, exact: dict, pattern: str, options: aiohttp_cors.ResourceOptions):
        super().__init__(exact)
        self._pattern = re.compile(pattern)
        self._options = options

    def _matches(self, origin) -> bool:
        return isinstance(origin, str) and self._pattern.fullmatch(origin) is not None

    def __contains__(self, origin) -> bool:
        return super().__contains__(origin) or self._matches(origin)

    def __missing__(self, origin):
        if self._matches(origin):
            return self._options
        raise KeyError(origin)

    def get(self, origin, default=None):
        return self[origin] if origin in self else default


def setup(app: web.Application, settings: Settings) -> None:
    """Enable CORS on every route added so far; call it after all routes."""
    if not settings.cors_origins and not settings.cors_origin_regex:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,  # bearer tokens, not cookies
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        allow_methods=ALLOW_METHODS,
        max_age=MAX_AGE,
    )
    origins: dict = {origin: options for origin in settings.cors_origins}
    if settings.cors_origin_regex:
        origins = RegexOrigins(origins, settings.cors_origin_regex, options)
    cors = aiohttp_cors.CorsConfig(
        app, router_adapter=ResourcesUrlDispatcherRouterAdapter(app.router, origins)
    )
    for resource in list(app.router.resources()):
        cors.add(resource)

    async def after_aiohttp_cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return
        if "Origin" not in response.headers.getall(hdrs.VARY, ()):
            response.headers.add(hdrs.VARY, "Origin")
        if request.match_info.route.resource is not None:
            return  # a routed resource: aiohttp-cors has decided
        allowed = origins.get(origin, origins.get("*"))
        if allowed is not None and hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ",".join(EXPOSE_HEADERS)

    # Appended after aiohttp-cors's own hook, so it sees the headers that one set.
    app.on_response_prepare.append(after_aiohttp_cors)
