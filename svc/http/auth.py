"""Who is asking: HS256 JWTs, ``POST /auth/token``, and the rule for writes.

Auth is on only when ``JWT_SECRET_KEY`` is set.  Then a write to user X needs
``Authorization: Bearer <token>`` whose ``sub`` is X (401 without a valid
token, 403 for another user), and a WebSocket claims its user with
``?token=`` (see :mod:`svc.http.admission`).  Reads stay open, but only a
request with the owner's token reads a user's ``email``.  With auth off every
check here lets the request through, and ``POST /auth/token`` is 404: there is
no key to sign with.

A token is good only for the account and the password it was issued under.
A login binds it to the password it verified (the ``pat`` claim: when that
password was set, to the microsecond), so setting a new password, or deleting
the account and creating the id again, retires every token issued before; and
once its account is deleted such a token is 401 for every write, so it can
never create the id again (``PUT .../profile`` would, and squat a username).
A token without ``pat`` (signed elsewhere with the same key: the operator's
own issuer) must be issued (``iat``, with sub-second precision) no earlier
than the account's creation and its last password change, and may create its
id through ``PUT .../profile``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Protocol

import jwt
from aiohttp import web

from ..keys import LOGIN_THROTTLE, PASSWORDS, SETTINGS, STORAGE
from ..storage import Conflict, Credentials, NotFound, username_key
from . import routing
from .bodies import read_json
from .client_address import client_address, ignored_forwarding
from .errors import APIError
from .operation import Reply, documented
from .schemas import TokenRequestSchema, token_request_schema

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# exp, iat and sub must be there: a token without exp would live forever, and one
# without iat could not be compared with the account's password changes.
# (iat is required below, after a room token has been told apart: it has none.)
_DECODE_OPTIONS = {"require": ["exp", "sub"], "verify_iat": False}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="svc"'}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="svc", error="invalid_token"'}
_WRONG_CREDENTIALS = "wrong username or password"


class TokenSettings(Protocol):
    """What tokens are signed and checked with: ``svc.settings.Settings`` is one (the
    settings belong to the wiring above this layer, so only what is read is named here)."""

    @property
    def jwt_secret_key(self) -> str | None: ...

    @property
    def jwt_lifetime(self) -> int: ...


def _stamp(moment: datetime) -> float:
    """A storage timestamp as seconds since the epoch (microseconds survive JSON)."""
    return moment.timestamp()


def issue_token(settings: TokenSettings, credentials: Credentials) -> str:
    now = time.time()
    claims: dict[str, Any] = {
        "sub": credentials.user_id,
        "iat": now,
        "exp": now + settings.jwt_lifetime,
    }
    if credentials.password_updated_at is not None:
        claims["pat"] = _stamp(credentials.password_updated_at)
    return jwt.encode(claims, settings.jwt_secret_key, algorithm=ALGORITHM)


class InvalidToken(Exception):
    """A token that is bad, expired or stale; the message is safe to show its bearer."""


def _invalid(message: str) -> APIError:
    return APIError(401, "unauthorized", message, headers=_INVALID_TOKEN)


def decode_token(settings: TokenSettings, token: str) -> dict[str, Any]:
    """The claims of a good token; InvalidToken when it is bad or expired."""
    try:
        claims = jwt.decode(
            token, settings.jwt_secret_key, algorithms=[ALGORITHM], options=_DECODE_OPTIONS
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidTokenError:
        # No detail: why a forged token failed is of use only to its forger.
        raise InvalidToken("the token is not valid") from None
    if "room" in claims:
        # A room token (svc.http.room_tokens) opens one room; it never logs anyone in.
        raise InvalidToken("a room token is not a login token")
    if "iat" not in claims:
        raise InvalidToken("the token is not valid")
    iat, pat = claims["iat"], claims.get("pat")
    if (
        not isinstance(claims["sub"], str)
        or not _is_number(iat)
        or (pat is not None and not _is_number(pat))
    ):
        raise InvalidToken("the token is not valid")
    return claims


def token_claims(settings: TokenSettings, token: str) -> dict[str, Any]:
    """As :func:`decode_token`, for HTTP: 401 when the token is bad or expired."""
    try:
        return decode_token(settings, token)
    except InvalidToken as exc:
        raise _invalid(str(exc)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_current(claims: dict[str, Any], credentials: Credentials) -> bool:
    """Was this token issued for the account and password as they are now?"""
    password_set = credentials.password_updated_at
    if "pat" in claims:  # from a login: bound to the password it verified
        return password_set is not None and claims["pat"] == _stamp(password_set)
    iat = claims["iat"]
    if credentials.created_at is not None and iat < _stamp(credentials.created_at):
        return False
    return password_set is None or iat >= _stamp(password_set)


_STALE = (
    "the token was issued before the account was created or its password last set; log in again"
)


#: A login's token whose account is gone: it creates nothing, changes nothing.
ACCOUNT_GONE = "the account of this token no longer exists (it was deleted)"


def account_gone() -> APIError:
    """401 for a token whose account was deleted (see the module)."""
    return _invalid(ACCOUNT_GONE)


def refuse_stale(claims: dict[str, Any], credentials: Credentials) -> None:
    """InvalidToken unless the token is current for ``credentials`` (:func:`is_current`)."""
    if not is_current(claims, credentials):
        raise InvalidToken(_STALE)


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, if the request has one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _check_bearer(request: web.Request, user_id: str) -> Credentials | None:
    """Check a bearer token for ``user_id``: 401/403 as the module says.  Returns the
    account's credentials, or None when there is no such account (yet)."""
    token = bearer_token(request)
    if token is None:
        raise APIError(
            401, "unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    claims = token_claims(request.app[SETTINGS], token)
    if claims["sub"] != user_id:
        raise APIError(403, "forbidden", "the token belongs to another user")
    try:
        credentials = await request.app[STORAGE].get_credentials(user_id)
    except NotFound:
        if "pat" in claims:
            # A login's token names an account that existed: it was deleted since.  It
            # must not create the id again (and take a username with it).
            raise account_gone() from None
        return None  # a token signed elsewhere: creating it (PUT profile), or a 404 to come
    if not is_current(claims, credentials):
        raise _invalid(_STALE)
    return credentials


async def authorize_write(request: web.Request, user_id: str) -> Credentials | None:
    """Let a write to ``user_id`` through only for a bearer of a current token of that user.

    Called before the body is read, so a stranger learns nothing about whether
    the user exists.  Returns the credentials it read (None with auth off, or
    when the user does not exist).
    """
    if not request.app[SETTINGS].auth_enabled:
        return None
    return await _check_bearer(request, user_id)


async def is_owner(request: web.Request, user_id: str) -> bool:
    """Does the request carry a current token of ``user_id``?  (Who may read its email.)

    A bad or stale token is not an error here: reads are open, so it reads as anyone.
    """
    token = bearer_token(request)
    if token is None:
        return False
    try:
        claims = decode_token(request.app[SETTINGS], token)
        if claims["sub"] != user_id:
            return False
        credentials = await request.app[STORAGE].get_credentials(user_id)
    except (InvalidToken, NotFound):
        return False
    return is_current(claims, credentials)


def client_waiting(request: web.Request):
    """A check, for work that queues, that the client is still there to get the answer."""

    def waiting() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return waiting


@documented(
    summary="a token for a username and password (auth on only)",
    tag="auth",
    description="Auth on: an HS256 JWT whose `sub` is the user id. A wrong password and an "
    "unknown username get the same 401, in the same time; after five failures in a row for "
    "one username from one client (its address, or the one a trusted proxy reports; after "
    "one once the account has had 20 failures from anyone in 15 minutes), that client's "
    "further attempts at it wait (429 with `Retry-After`, doubling up to 5 minutes), as "
    "do all its attempts after 50 failures; the owner logging in from elsewhere is never "
    "slowed. "
    "A hash of an older scheme is re-hashed on success. The token is good until it "
    "expires, the password is set again, or the account is deleted. Auth off "
    "(`JWT_SECRET_KEY` not set): 404, there is no key to sign with.",
    body=TokenRequestSchema,
    body_description="the credentials",
    replies={200: Reply("the token", "Token")},
    errors=(400, 401, 404, 408, 413, 415, 422, 429, 503),
)
async def login(request: web.Request) -> web.Response:
    """``POST /auth/token``: a token for a username and password."""
    settings = request.app[SETTINGS]
    if not settings.auth_enabled:
        raise APIError(404, "not_found", "auth is off on this server (JWT_SECRET_KEY is not set)")
    request.app[PASSWORDS].check_room()  # a flood is shed before its body is even read
    body = await read_json(request, token_request_schema)
    credentials = await guarded(
        request,
        username_key(body["username"]),
        _check_password(request, body["username"], body["password"]),
        lambda credentials: credentials is not None,
    )
    if credentials is None:
        raise APIError(401, "unauthorized", _WRONG_CREDENTIALS, headers=_CHALLENGE)
    return web.json_response(
        {
            "access_token": issue_token(settings, credentials),
            "token_type": "bearer",
            "expires_in": settings.jwt_lifetime,
        },
        headers={"Cache-Control": "no-store"},
    )


async def guarded(request: web.Request, key: str, attempt, succeeded):
    """Await ``attempt`` (a password check) under the failed-login throttle of this client
    and ``key``: 429 with ``Retry-After`` without running it while they are shut."""
    throttle, clock = request.app[LOGIN_THROTTLE], time.monotonic
    proxies = request.app[SETTINGS].trusted_proxies
    client = client_address(request, proxies)
    if not throttle.told_of_ignored_forwarding and ignored_forwarding(request, proxies):
        # Silent, an unnamed balancer would make every client one, sharing one budget.
        throttle.told_of_ignored_forwarding = True
        log.warning(
            "login throttle: a login from %s carried X-Forwarded-For or Forwarded, ignored "
            "since that address is not in TRUSTED_PROXIES; if it is your balancer, name it "
            "there, or every client behind it counts as one (said once)",
            client,
        )
    wait = throttle.begin(client, key, clock())
    if wait:
        attempt.close()  # never started
        error = APIError(
            429,
            "too_many_requests",
            "too many failed password attempts from this client; try again later",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )
        error.force_close()  # a guesser that does not wait pays a new connection each time
        raise error
    ok = None
    try:
        result = await attempt
        ok = bool(succeeded(result))
    finally:
        throttle.end(client, key, clock(), ok)
    return result


async def _check_password(request: web.Request, username: str, password: str):
    """The credentials of ``username`` if ``password`` is theirs, else None.

    An unknown user still costs one verify, so the time taken does not tell
    which usernames exist.  A hash of an older scheme is upgraded now, the only
    moment the plain password is at hand, but only if it is still the hash
    that was verified: a password change racing this login must win.
    """
    storage, passwords = request.app[STORAGE], request.app[PASSWORDS]
    for _ in range(2):  # a second round only if the hash changed under a re-hash
        try:
            credentials = await storage.find_credentials(username)
        except NotFound:
            credentials = None
        ok, new_hash = await passwords.verify(
            password,
            credentials.password_hash if credentials else None,
            wanted=client_waiting(request),
        )
        if not ok or credentials is None:
            return None
        if new_hash is None:
            return credentials
        try:
            updated_at = await storage.set_password_hash(
                credentials.user_id, new_hash, expected_hash=credentials.password_hash
            )
        except NotFound:  # deleted meanwhile: no token for a user that is gone
            return None
        except Conflict:  # the hash changed since it was read: verify what is there now
            continue
        return Credentials(credentials.user_id, new_hash, updated_at, credentials.created_at)
    return None


def setup_routes(app: web.Application) -> None:
    routing.add(app, "POST", "/auth/token", login)
