"""REST handlers for ``/users``."""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp import hdrs, web

from ..broker import Change
from ..keys import BROKER, HUB, PASSWORDS, SETTINGS, STORAGE
from ..serialize import format_timestamp, user_json
from ..storage import Conflict, NotFound, User
from . import routing
from .auth import account_gone, authorize_write, client_waiting, guarded, is_owner
from .bodies import read_json
from .errors import APIError
from .ids import USER_ID
from .operation import Reply, documented
from .plain_profile import plain_profile_update
from .schemas import (
    NewUserSchema,
    PasswordSchema,
    ProfileSchema,
    new_user_schema,
    password_schema,
    profile_schema,
)
from .vary import add_vary

log = logging.getLogger(__name__)
_USER = Reply("the user", "User", ("ETag",))
_CREATED = Reply("created", "User", ("ETag", "Location"))
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')


def _etag(user: User) -> str:
    """The ETag of a user: its version, quoted (``_ETAG`` reads it back from If-Match)."""
    return f'"{user.version}"'


def user_response(
    user: User,
    status: int = 200,
    headers: dict | None = None,
    with_email: bool = True,
    etag: str | None = None,
) -> web.Response:
    """The user; ``with_email=False`` shows its ``email`` as null (auth on, not its owner)."""
    # Every header in one dict: cheaper than aiohttp's content_type= and a header set later;
    # names as hdrs' istr, which the headers' case-insensitive dict need not fold again.
    fields = {hdrs.CONTENT_TYPE: "application/json", hdrs.ETAG: etag or _etag(user)}
    if headers:
        fields.update(headers)
    return web.Response(body=user_json(user, with_email), status=status, headers=fields)


@documented(
    summary="create a user",
    tag="users",
    description="Open, with auth on too. Without `id` the user gets a random one. Rooms "
    "where the id is already present (a profileless member) get `profile_updated`.",
    body=NewUserSchema,
    body_description="the profile, with optional `password` and `id`",
    replies={201: _CREATED},
    errors=(400, 408, 409, 413, 415, 422, 503),
)
async def create_user(request: web.Request) -> web.Response:
    body = await read_json(request, new_user_schema)
    user_id = body.pop("id", None) or secrets.token_urlsafe(12)
    password = body.pop("password", None)
    storage = request.app[STORAGE]
    password_hash = None
    if password is not None:
        # A bcrypt costs far more than two reads: a clash is answered before hashing
        # (a create racing this one still gets its 409 from storage).
        await _refuse_taken(storage, user_id, body["username"])
        password_hash = await request.app[PASSWORDS].hash(password, client_waiting(request))
    user = await storage.create_user(user_id, body, password_hash)
    await publish(request, Change(user.id, user.version, user))
    return user_response(user, 201, {"Location": f"/users/{user.id}"})


async def _refuse_taken(storage, user_id: str, username: str) -> None:
    try:
        await storage.get_user(user_id)
    except NotFound:
        pass
    else:
        raise Conflict(f"user {user_id!r} already exists", field="id")
    try:
        await storage.find_credentials(username)
    except NotFound:
        pass
    else:
        raise Conflict(f"username {username!r} is taken", field="username")


@documented(
    summary="read a user",
    tag="users",
    description="Open in both modes. With auth on, `email` is `null` unless the request "
    "carries the user's own token.",
    parameters=("UserId", "IfNoneMatch"),
    replies={
        200: _USER,
        304: Reply("not modified since the `If-None-Match` version", headers=("ETag",)),
    },
    errors=(404, 503),
)
async def get_user(request: web.Request) -> web.Response:
    app = request.app  # a property of a property: read once
    user = await app[STORAGE].get_user(request.match_info["user_id"])
    auth = app[SETTINGS].auth_enabled
    etag = _etag(user)
    if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
        response = web.Response(status=304, headers={"ETag": etag})
    elif not auth:
        return user_response(user, etag=etag)
    else:
        # Auth on: the email is shown to its owner only.
        response = user_response(user, with_email=await is_owner(request, user.id), etag=etag)
    if auth:  # the body depends on the token, for any cache on the way
        add_vary(response.headers, "Authorization")
    return response


@documented(
    summary="partial update of a profile; creates a missing user",
    tag="users",
    description="Fields present are set, `null` clears one; an empty body is 422. "
    "Without `If-Match` a missing user is created (201) from whatever fields the body has, "
    "with or without a `username` (a user without one cannot log in until it is set); "
    "with `If-Match` (even `*`) a missing user is 412. With auth on, the token of a "
    "deleted account (from a login) creates nothing: 401. Broadcasts `profile_updated` to "
    "every room where the user is present.",
    parameters=("UserId", "IfMatch"),
    body=ProfileSchema,
    body_description="the fields to set or clear",
    replies={200: _USER, 201: _CREATED},
    errors=(400, 404, 408, 409, 412, 413, 415, 422, 503),
    owner_only=True,
)
async def update_profile(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    # Creating X through here also needs X's token, and not one of a deleted X (auth.py).
    credentials = await authorize_write(request, user_id)
    changes = await read_json(request, profile_schema, plain_profile_update)
    # RFC 9110 13.2.1: preconditions are evaluated after the request's own checks.
    expected = _expected_version(request)
    conditional = hdrs.IF_MATCH in request.headers
    try:
        # Without If-Match a missing user is created from whatever fields the body has (the
        # replaced service's clients upsert ids they got elsewhere); with it (even
        # "If-Match: *", which asks for an existing user), never.  Nor when the token was
        # checked against an existing account: deleted since, it is gone for this token too
        # (a DELETE racing this PUT must not let the old token create the id again).
        user, created = await request.app[STORAGE].update_profile(
            user_id,
            changes,
            expected_version=expected,
            create=not conditional and credentials is None,
        )
    except NotFound:
        if credentials is not None and not conditional:
            raise account_gone() from None
        raise APIError(
            412, "precondition_failed", "If-Match given, but there is no such user"
        ) from None
    await publish(request, Change(user.id, user.version, user))
    if created:
        return user_response(user, 201, {"Location": f"/users/{user.id}"})
    return user_response(user)


def _expected_version(request: web.Request) -> int | None:
    raw = request.headers.get(hdrs.IF_MATCH)
    if raw is None or raw.strip() == "*":
        return None
    match = _ETAG.match(raw)
    if match is None:
        # An entity tag we never issued cannot match the current one.
        raise APIError(412, "precondition_failed", 'If-Match must be a version, e.g. "3"')
    return int(match.group(1))


@documented(
    summary="set the password",
    tag="users",
    description="`current_password`, when given, must match (403; repeated failures are "
    "throttled like logins: 429); with auth on, changing an existing password needs it "
    "(422), and every token issued before stops working: sockets that joined with one "
    "are closed with 4401, on every process. Of two changes racing over one "
    "password, the second gets 409. Not a profile change: `version` does not move and "
    "no frame is broadcast.",
    parameters=("UserId",),
    body=PasswordSchema,
    body_description="the new password",
    replies={200: Reply("the password is set", "PasswordUpdated")},
    errors=(400, 403, 404, 408, 409, 413, 415, 422, 429, 503),
    owner_only=True,
)
async def set_password(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    credentials = await authorize_write(request, user_id)
    body = await read_json(request, password_schema)
    storage, passwords = request.app[STORAGE], request.app[PASSWORDS]
    if credentials is None:
        credentials = await storage.get_credentials(user_id)  # 404 before any hashing work
    current = body.get("current_password")
    if current is None and credentials.password_hash is not None:
        if request.app[SETTINGS].auth_enabled:
            # A token alone (perhaps copied from a browser) must not take the account over.
            raise APIError(
                422,
                "validation_failed",
                "changing an existing password needs current_password",
                {"current_password": ["Missing data for required field."]},
            )
    wanted = client_waiting(request)
    if current is not None:
        # Guessing current_password with a stolen token is throttled like a login.
        ok, _ = await guarded(
            request,
            f"id:{user_id}",  # ":" is in no username: its own entry in the throttle
            passwords.verify(current, credentials.password_hash, wanted),
            lambda verdict: verdict[0],
        )
        if not ok:
            raise APIError(403, "forbidden", "current_password is wrong")
    new_hash = await passwords.hash(body["new_password"], wanted)
    # Only over the hash that was checked: of two changes racing, the second gets 409.
    updated_at = await storage.set_password_hash(
        user_id, new_hash, expected_hash=credentials.password_hash
    )
    if request.app[SETTINGS].auth_enabled:
        # Sockets that joined with a token issued before it close, on every process.
        request.app[HUB].password_set(user_id, updated_at.timestamp())
    return web.json_response(
        {"user_id": user_id, "password_updated_at": format_timestamp(updated_at)}
    )


@documented(
    summary="delete a user",
    tag="users",
    description="Rooms where the user is present see them leave.",
    parameters=("UserId",),
    replies={204: Reply("deleted")},
    errors=(404, 503),
    owner_only=True,
)
async def delete_user(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    await authorize_write(request, user_id)
    user = await request.app[STORAGE].delete_user(user_id)
    await publish(request, Change(user_id, user.version + 1, None, deleted=True))
    return web.Response(status=204)


async def publish(request: web.Request, change: Change) -> None:
    """Tell every process of a committed change.  The write stands whatever happens
    here: a broker that cannot take it now is repaired by the rooms' periodic re-read."""
    try:
        await request.app[BROKER].publish_change(change)
    except Exception as exc:  # noqa: BLE001 - never turn a committed write into an error
        request.app[BROKER].errors += 1
        log.warning("broker: could not publish the change of %s (%s)", change.user_id, exc)


def setup_routes(app: web.Application) -> None:
    # aiohttp tries the resources under "/users" in the order they were added: a user's own
    # path first, as the reads of a user are most of the traffic ("/users" first cost every
    # GET one more resource tried, 2 % of its instructions: bench/README.md).
    routing.add(app, "GET", f"/users/{USER_ID}", get_user)
    routing.add(app, "DELETE", f"/users/{USER_ID}", delete_user)
    routing.add(app, "PUT", f"/users/{USER_ID}/profile", update_profile)
    routing.add(app, "PUT", f"/users/{USER_ID}/password", set_password)
    routing.add(app, "POST", "/users", create_user)
