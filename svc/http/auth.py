"""Who is asking: HS256 JWTs, ``POST /auth/token``, and the rule for writes.

Auth is on only when ``JWT_SECRET_KEY`` is set.  Then a write to user X needs
``Authorization: Bearer <token>`` whose ``sub`` is X (401 without a valid
token, 403 for another user), and a WebSocket claims its user with
``?token=`` (see :mod:`svc.rooms.admission`).  Reads stay open, but only a
request with the owner's token reads a user's ``email``.  With auth off every check here lets the
request through, and ``POST /auth/token`` is 404: there is no key to sign with.
"""

from __future__ import annotations

import math
import time

import jwt
from aiohttp import web

from ..keys import PASSWORDS, SETTINGS, STORAGE
from ..settings import Settings
from ..storage import Credentials, NotFound
from .bodies import read_json
from .errors import APIError
from .operation import Reply, documented
from .schemas import TokenRequestSchema, token_request_schema

ALGORITHM = "HS256"
# exp and sub must be there: a token without exp would live forever.
_REQUIRED_CLAIMS = {"require": ["exp", "sub"]}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="svc"'}
#: Seconds of slack between token clocks and storage clocks (see refuse_stale).
STALE_LEEWAY = 1
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="svc", error="invalid_token"'}


def issue_token(settings: Settings, user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + settings.jwt_lifetime}
    return jwt.encode(claims, settings.jwt_secret_key, algorithm=ALGORITHM)


class InvalidToken(Exception):
    """A token that is bad, expired or stale; the message is safe to show its bearer."""


def token_claims(settings: Settings, token: str) -> dict:
    """The verified claims of a token (``sub`` a string); InvalidToken if it is bad or expired."""
    try:
        claims = jwt.decode(
            token, settings.jwt_secret_key, algorithms=[ALGORITHM], options=_REQUIRED_CLAIMS
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidTokenError:
        # No detail: why a forged token failed is of use only to its forger.
        raise InvalidToken("the token is not valid") from None
    if not isinstance(claims["sub"], str):
        raise InvalidToken("the token is not valid")
    return claims


def refuse_stale(claims: dict, credentials: Credentials) -> None:
    """InvalidToken if the token was issued before its account was created or its password
    last set (API.md: a new password ends every older token; so does re-creating an id).

    ``iat`` has whole seconds, and the moments may come from the database's clock: a token
    issued up to ``STALE_LEEWAY`` seconds before the change still counts, so that a login
    right after it is never refused for a clock a little ahead.
    """
    issued = claims.get("iat")
    if not isinstance(issued, (int, float)):
        issued = 0  # issued by us, iat is always there: without one, assume the oldest
    for moment, what in (
        (credentials.created_at, "the account was created"),
        (credentials.password_updated_at, "the password was last set"),
    ):
        if moment is not None and issued < math.floor(moment.timestamp()) - STALE_LEEWAY:
            raise InvalidToken(f"the token was issued before {what}; log in again")


def _unauthorized(exc: InvalidToken) -> APIError:
    return APIError(401, "unauthorized", str(exc), headers=_INVALID_TOKEN)


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, if the request has one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def fresh_claims(request: web.Request, token: str) -> dict:
    """The claims of a valid token whose user has not since been re-created or changed
    password; InvalidToken otherwise."""
    claims = token_claims(request.app[SETTINGS], token)
    await refuse_if_stale(request, claims)
    return claims


async def refuse_if_stale(request: web.Request, claims: dict) -> None:
    """:func:`refuse_stale` against the stored user.  A user that does not exist is no
    reason (a token for X may create X through ``PUT /users/X/profile``)."""
    try:
        credentials = await request.app[STORAGE].get_credentials(claims["sub"])
    except NotFound:
        return
    refuse_stale(claims, credentials)


async def authorize_write(request: web.Request, user_id: str) -> None:
    """Let a write to ``user_id`` through only for a bearer of that user's token.

    Called before the body is read, and storage is asked only once the token is
    known to be X's, so a stranger learns nothing about whether the user exists.
    """
    if not request.app[SETTINGS].auth_enabled:
        return
    token = bearer_token(request)
    if token is None:
        raise APIError(
            401, "unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    try:
        claims = token_claims(request.app[SETTINGS], token)
        if claims["sub"] != user_id:
            raise APIError(403, "forbidden", "the token belongs to another user")
        await refuse_if_stale(request, claims)
    except InvalidToken as exc:
        raise _unauthorized(exc) from None


async def is_owner(request: web.Request, user_id: str) -> bool:
    """Does the request carry a valid token of ``user_id``?  (Who may read its email.)

    A bad or stale token is not an error here: reads are open, so it reads as anyone.
    """
    token = bearer_token(request)
    if token is None:
        return False
    try:
        claims = await fresh_claims(request, token)
    except InvalidToken:
        return False
    return claims["sub"] == user_id


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
