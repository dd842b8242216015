"""``GET /demo`` and ``GET /static/{name}``: the live demo page and the files it is made of.

Everything comes from the ``svc/static`` folder of the installed package (package
data, so a wheel serves it too), read once when the app is built: no CDN, no
build step, no file-system access per request, and no path from a request ever
reaches the file system (a name not in the table is 404).

``svc-client.js`` is the reusable part: an ES module a front end imports to keep
a room's state (docs/client.md).  The page itself is ``demo.html`` + ``demo.js``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from ..keys import SETTINGS
from ..settings import Settings
from .errors import APIError

#: Files served under /static/, with their media types (all UTF-8 text).
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
#: The page. Browsers revalidate every load (no-cache + ETag): a new svc is seen at once.
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


def load_assets() -> dict[str, Asset]:
    """Every servable file of svc/static by name (the page itself is not among them)."""
    assets = {}
    for entry in static_dir().iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in STATIC_TYPES:
            assets[entry.name] = Asset.of(entry.read_bytes(), STATIC_TYPES[suffix])
    return assets


def load_page(settings: Settings) -> Asset:
    html = (static_dir() / "demo.html").read_text(encoding="utf-8")
    if _AUTH_MARKER not in html:  # pragma: no cover - guards an edit of demo.html
        raise RuntimeError(f"demo.html lost its {_AUTH_MARKER} marker")
    if settings.auth_enabled:
        html = html.replace(_AUTH_MARKER, 'data-auth="on"', 1)
    return Asset.of(html.encode(), "text/html")


def setup_routes(app: web.Application) -> None:
    assets = load_assets()
    page = load_page(app[SETTINGS])

    async def demo_page(request: web.Request) -> web.Response:
        return page.response(request, {"Content-Security-Policy": _PAGE_CSP})

    async def static_file(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise APIError(404, "not_found", "no such file")
        return asset.response(request)

    app.router.add_get("/demo", demo_page)
    app.router.add_get("/static/{name:[A-Za-z0-9_.-]{1,64}}", static_file)
