"""``GET /docs``: an interactive API console (Swagger UI) for ``/openapi.json``, served offline.

Swagger UI's script and style come from the ``swagger-ui-py`` package and are served by
svc itself under ``/docs/{asset}``: nothing is fetched from a CDN, so the console works on
a machine without internet access.  Only the few files the page loads are served (a
fixed table, no directory walk), each read and gzipped once per process.

Every URL in the page is relative (``docs/...``, ``openapi.json``), so the console also
works behind a proxy that mounts svc under a path prefix.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

from aiohttp import web

from . import routing
from .errors import APIError
from .operation import Reply, documented

# Swagger UI would otherwise show a badge fetched from validator.swagger.io: the one
# outside request it makes by default.
_CONSOLE_JS = b"""window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  displayRequestDuration: true,
});
"""

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>svc API console</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>The console needs JavaScript; the document itself is
<a href="openapi.json">/openapi.json</a>.</noscript>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/console.js"></script>
</body>
</html>
"""

# asset name → content type; "console.js" is ours, the others are Swagger UI's own files.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "console.js": "text/javascript",
}
_COMPRESSIBLE = ("text/css", "text/javascript")


@cache
def _asset(name: str) -> tuple[bytes, bytes | None]:
    """The file's bytes, and its gzipped bytes when worth sending so."""
    if name == "console.js":
        body = _CONSOLE_JS
    else:
        body = (resources.files("swagger_ui") / "static" / name).read_bytes()
    packed = gzip.compress(body, mtime=0) if ASSETS[name] in _COMPRESSIBLE else None
    return body, packed


@documented(
    summary="an interactive console for this API (Swagger UI, served offline)",
    tag="docs",
    replies={200: Reply("the console's page", {"type": "string"}, media="text/html")},
)
async def console_page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html", charset="utf-8")


@documented(
    summary="the console's script, style and icon",
    tag="docs",
    parameters=(
        {
            "name": "asset",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": sorted(ASSETS)},
        },
    ),
    replies={
        200: Reply("the file", {"type": "string"}, media=tuple(dict.fromkeys(ASSETS.values())))
    },
    errors=(404,),
)
async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise APIError(404, "not_found", "no such file of the console")
    body, packed = _asset(name)
    response = web.Response(
        body=body,
        content_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"},
    )
    if packed is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.body = packed
        response.headers["Content-Encoding"] = "gzip"
    return response


def setup_routes(app: web.Application) -> None:
    routing.add(app, "GET", "/docs", console_page)
    routing.add(app, "GET", "/docs/{asset}", console_asset)
