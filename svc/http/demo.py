"""``GET /demo`` and ``GET /static/{name}``: the live demo page and the files it is made of.

Everything comes from the ``svc/static`` folder of the installed package (package
data, so a wheel serves it too), read once per process: no CDN, no build step, no
file-system access per request, and no path from a request ever reaches the file
system (a name not in the table is 404).

``svc-client.js`` is the reusable part: an ES module a front end imports to keep a
room's state (docs/client.md).  The page itself is ``demo.html`` + ``demo.js``; every
URL in it is relative, so it also works behind a proxy that mounts svc under a prefix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from ..keys import SETTINGS
from . import routing
from .errors import APIError
from .operation import Reply, documented

#: Files served under /static/ by suffix, with their media types (all UTF-8 text).
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
# Browsers revalidate on every load (no-cache + ETag): a new svc's files are seen at once.
_COMMON_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The page talks only to the svc that served it; avatars may come from anywhere on the web.
_PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' http: https: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
#: How demo.html learns whether auth is on (it then shows a login form).
_AUTH_MARKER = 'data-auth="off"'


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        return cls(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')

    def response(self, request: web.Request, extra: dict[str, str] | None = None) -> web.Response:
        headers = {**_COMMON_HEADERS, "ETag": self.etag, **(extra or {})}
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=self.body, content_type=self.content_type, charset="utf-8", headers=headers
        )


def static_dir():
    return resources.files("svc") / "static"


@cache
def assets() -> dict[str, Asset]:
    """Every servable file of svc/static by name (the page itself is not among them)."""
    table = {}
    for entry in static_dir().iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in STATIC_TYPES:
            table[entry.name] = Asset.of(entry.read_bytes(), STATIC_TYPES[suffix])
    return table


@cache
def page(auth_enabled: bool) -> Asset:
    html = (static_dir() / "demo.html").read_text(encoding="utf-8")
    if _AUTH_MARKER not in html:  # pragma: no cover - guards an edit of demo.html
        raise RuntimeError(f"demo.html lost its {_AUTH_MARKER} marker")
    if auth_enabled:
        html = html.replace(_AUTH_MARKER, 'data-auth="on"', 1)
    return Asset.of(html.encode(), "text/html")


_NOT_MODIFIED = Reply("not modified since the `If-None-Match` entity tag")


@documented(
    summary="a live demo page: join a room, edit your profile, watch every card change",
    tag="demo",
    description="Two tabs of it show a profile saved in one appear in the other at once, "
    "and presence come and go. With auth on, it logs in first.",
    replies={
        200: Reply("the page", {"type": "string"}, media="text/html"),
        304: _NOT_MODIFIED,
    },
)
async def demo_page(request: web.Request) -> web.Response:
    asset = page(request.app[SETTINGS].auth_enabled)
    return asset.response(request, {"Content-Security-Policy": _PAGE_CSP})


@documented(
    summary="a file of the demo page; `svc-client.js` is the room client module",
    tag="demo",
    description="`svc-client.js` is an ES module to import in your own front end: it keeps a "
    "room's members and their latest versions, and reconnects with backoff.",
    parameters=(
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": sorted(assets())},
        },
    ),
    replies={
        200: Reply(
            "the file", {"type": "string"}, media=tuple(dict.fromkeys(STATIC_TYPES.values()))
        ),
        304: _NOT_MODIFIED,
    },
    errors=(404,),
)
async def static_file(request: web.Request) -> web.Response:
    asset = assets().get(request.match_info["name"])
    if asset is None:
        raise APIError(404, "not_found", "no such file")
    return asset.response(request)


def setup_routes(app: web.Application) -> None:
    routing.add(app, "GET", "/demo", demo_page)
    routing.add(app, "GET", "/static/{name}", static_file)
