"""``POST /demo/room-token``: a room token for the demo page's own private room (demo-only).

Room tokens are the application backend's to sign (svc.http.room_tokens); the demo page has
no backend, so this route signs one for it, fenced twice (docs/auth.md, "The demo's private
room"): it answers only when ``DEMO_ROOM_TOKENS`` is true (404 otherwise), and only ever for
the room :data:`DEMO_ROOM`, whatever is asked, so even switched on it opens no room of the
application.  The caller must be logged in: the token is for the bearer of a login token.
"""

from __future__ import annotations

import time

import jwt
from aiohttp import web

from ..keys import SETTINGS
from . import routing
from .auth import ALGORITHM, authorize_write, bearer_token, token_claims
from .errors import APIError
from .operation import Reply, documented

#: The one room this route signs for.
DEMO_ROOM = "demo-private"
#: A demo room token lives JWT_LIFETIME, at most this long.
MAX_LIFETIME = 600


@documented(
    summary="a room token for the demo's private room (demo-only, off by default)",
    tag="demo",
    description=f"Only when `DEMO_ROOM_TOKENS=true` (else 404), and only for the room "
    f"`{DEMO_ROOM}`: a room token for the bearer of a current login token, so `/demo` can "
    "show a private room. A real application signs room tokens in its own backend "
    "(docs/auth.md).",
    replies={
        200: Reply(
            "the room token",
            {
                "type": "object",
                "properties": {
                    "room_token": {"type": "string"},
                    "room": {"type": "string", "enum": [DEMO_ROOM]},
                    "expires_in": {"type": "integer"},
                },
            },
        )
    },
    errors=(401, 404),
)
async def demo_room_token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not (settings.auth_enabled and settings.demo_room_tokens):
        raise APIError(404, "not_found", "demo room tokens are off (DEMO_ROOM_TOKENS)")
    token = bearer_token(request)
    if token is None:
        raise APIError(
            401,
            "unauthorized",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="svc"'},
        )
    user_id = token_claims(settings, token)["sub"]
    if await authorize_write(request, user_id) is None:  # a token signed elsewhere, no account
        raise APIError(401, "unauthorized", "the token's user does not exist")
    lifetime = min(settings.jwt_lifetime, MAX_LIFETIME)
    claims = {"sub": user_id, "room": DEMO_ROOM, "exp": time.time() + lifetime}
    return web.json_response(
        {
            "room_token": jwt.encode(claims, settings.jwt_secret_key, algorithm=ALGORITHM),
            "room": DEMO_ROOM,
            "expires_in": lifetime,
        },
        headers={"Cache-Control": "no-store"},
    )


def setup_routes(app: web.Application) -> None:
    routing.add(app, "POST", "/demo/room-token", demo_room_token)
