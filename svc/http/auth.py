"""Who is asking: HS256 JWTs, ``POST /auth/token``, and the rule for writes.

Auth is on only when ``JWT_SECRET_KEY`` is set.  Then a write to user X needs
``Authorization: Bearer <token>`` whose ``sub`` is X (401 without a valid
token, 403 for another user), and a WebSocket claims its user with
``?token=``.  Reads stay open.  With auth off every check here lets the
request through, and ``POST /auth/token`` is 404: there is no key to sign with.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import jwt
from aiohttp import web

from ..keys import PASSWORDS, SETTINGS, STORAGE
from ..settings import Settings
from ..storage import NotFound
from .bodies import read_json
from .errors import APIError
from .operation import Reply, documented
from .schemas import TokenRequestSchema, token_request_schema

ALGORITHM = "HS256"
# exp and sub must be there: a token without exp would live forever.
_REQUIRED_CLAIMS = {"require": ["exp", "sub"]}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="svc"'}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="svc", error="invalid_token"'}


def issue_token(settings: Settings, user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + settings.jwt_lifetime}
    return jwt.encode(claims, settings.jwt_secret_key, algorithm=ALGORITHM)


def token_subject(settings: Settings, token: str) -> str:
    """The user id a token was issued to; 401 when it is bad or expired."""
    try:
        claims = jwt.decode(
            token, settings.jwt_secret_key, algorithms=[ALGORITHM], options=_REQUIRED_CLAIMS
        )
    except jwt.ExpiredSignatureError:
        raise APIError(
            401, "unauthorized", "the token has expired", headers=_INVALID_TOKEN
        ) from None
    except jwt.InvalidTokenError:
        # No detail: why a forged token failed is of use only to its forger.
        raise APIError(
            401, "unauthorized", "the token is not valid", headers=_INVALID_TOKEN
        ) from None
    subject = claims["sub"]
    if not isinstance(subject, str):
        raise APIError(401, "unauthorized", "the token is not valid", headers=_INVALID_TOKEN)
    return subject


def authorize_write(request: web.Request, user_id: str) -> None:
    """Let a write to ``user_id`` through only for a bearer of that user's token.

    Called before the body is read or storage is asked, so the answer says
    nothing about whether the user exists.
    """
    settings = request.app[SETTINGS]
    if not settings.auth_enabled:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401, "unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    if token_subject(settings, token.strip()) != user_id:
        raise APIError(403, "forbidden", "the token belongs to another user")


def _first_values(query_string: str) -> dict[str, str]:
    """Each name's first value, as ``request.query.get`` gives it."""
    return dict(reversed(parse_qsl(query_string, keep_blank_values=True)))


async def websocket_user_id(request: web.Request) -> str | None:
    """The user a WebSocket connection joins as, or None for a watcher.

    Auth off: the ``user_id`` query parameter as given (the caller validates
    its shape).  Auth on: the ``sub`` of ``?token=`` (401 when it is bad or
    expired, 404 when its user has been deleted: tokens are not revoked, so
    this is where a stale one stops); ``?user_id=`` without a token is 401,
    because claiming a user needs proof.  A connection with neither watches the
    room, as reads are open.
    """
    settings = request.app[SETTINGS]
    # Not request.query: that parse is cached on the URL, which a socket keeps for its
    # whole life (~400 B of every idle WebSocket, bench/memory_per_socket.py).
    query = _first_values(request.query_string)
    if not settings.auth_enabled:
        return query.get("user_id") or None
    token = query.get("token")
    if token:
        user_id = token_subject(settings, token)
        await request.app[STORAGE].get_user(user_id)  # NotFound → 404
        return user_id
    if query.get("user_id"):
        raise APIError(401, "unauthorized", "with auth on, join with ?token=, not ?user_id=")
    return None


@documented(
    summary="a token for a username and password (auth on only)",
    tag="auth",
    description="Auth on: an HS256 JWT whose `sub` is the user id. A wrong password and an "
    "unknown username get the same 401, in the same time; a hash of an older scheme is "
    "re-hashed on success. Auth off (`JWT_SECRET_KEY` not set): 404, there is no key to "
    "sign with.",
    body=TokenRequestSchema,
    body_description="the credentials",
    replies={200: Reply("the token", "Token")},
    errors=(400, 401, 404, 413, 415, 422, 503),
)
async def login(request: web.Request) -> web.Response:
    """``POST /auth/token``: a token for a username and password."""
    settings = request.app[SETTINGS]
    if not settings.auth_enabled:
        raise APIError(404, "not_found", "auth is off on this server (JWT_SECRET_KEY is not set)")
    body = await read_json(request, token_request_schema)
    storage, passwords = request.app[STORAGE], request.app[PASSWORDS]
    try:
        credentials = await storage.find_credentials(body["username"])
    except NotFound:
        credentials = None
    # An unknown user still costs one verify (against a dummy hash), so the
    # time taken does not tell which usernames exist.
    ok, new_hash = await passwords.verify(
        body["password"], credentials.password_hash if credentials else None
    )
    if not ok or credentials is None:
        raise APIError(401, "unauthorized", "wrong username or password", headers=_CHALLENGE)
    if new_hash is not None:
        # An older scheme (plain bcrypt, unsalted SHA-256) verified: upgrade it now,
        # the only moment the plain password is at hand.
        try:
            await storage.set_password_hash(credentials.user_id, new_hash)
        except NotFound:  # deleted meanwhile: no token for a user that is gone
            raise APIError(
                401, "unauthorized", "wrong username or password", headers=_CHALLENGE
            ) from None
    return web.json_response(
        {
            "access_token": issue_token(settings, credentials.user_id),
            "token_type": "bearer",
            "expires_in": settings.jwt_lifetime,
        },
        headers={"Cache-Control": "no-store"},
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/auth/token", login)
