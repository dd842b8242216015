"""``GET /openapi.json``: the contract (API.md) as an OpenAPI 3.1 document.

Request bodies come from the very marshmallow schemas that validate them
(svc/schemas.py), through apispec, so the document cannot drift from what the
server accepts.  Responses are described by the documentation-only schemas
below.  The document is built once, when the app is created, for the settings
in force (the auth parts only when auth is on), and served as cached bytes.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate

from .. import __version__
from ..keys import DOCS_HTML, OPENAPI_JSON
from ..settings import Settings
from .docs import render
from .schemas import (
    USER_ID_PATTERN,
    NewUserSchema,
    PasswordSchema,
    ProfileSchema,
    TokenRequestSchema,
)

# --- documentation-only schemas of the responses ----------------------------


def _present(field: fields.Field) -> fields.Field:
    field = copy.copy(field)
    field.required = True
    return field


# A profile as read: the input rules, and every field is there (``null`` when never set).
ProfileOutSchema = Schema.from_dict(
    {name: _present(field) for name, field in ProfileSchema._declared_fields.items()},
    name="ProfileOutSchema",
)


class UserSchema(Schema):
    id = fields.String(required=True, metadata={"description": "the user id"})
    user_id = fields.String(required=True, metadata={"description": "the same as `id`"})
    profile = fields.Nested(ProfileOutSchema, required=True)
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_failed"})
    message = fields.String(required=True)
    field_messages = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "for 409 and 422: each field named with its messages"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class TokenSchema(Schema):
    access_token = fields.String(required=True, metadata={"description": "an HS256 JWT"})
    token_type = fields.String(required=True, validate=validate.OneOf(["bearer"]))
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})


class PasswordUpdatedSchema(Schema):
    user_id = fields.String(required=True)
    password_updated_at = fields.DateTime(required=True)


class LivenessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))
    service = fields.String(required=True)
    version = fields.String(required=True)


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ready"]))
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class MembersSchema(Schema):
    members = fields.List(fields.Nested(UserSchema), required=True)
    member_count = fields.Integer(required=True, validate=validate.Range(min=0))
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "pass as `?cursor=` for the next page; null on the last"},
    )


# --- the document -------------------------------------------------------------

JSON = "application/json"


def _ecma(pattern: str) -> str:
    """A Python pattern ending in \\Z as JSON Schema says it: there, $ means end of input."""
    return pattern[:-2] + "$" if pattern.endswith(r"\Z") else pattern


ID_PATTERN = _ecma(USER_ID_PATTERN)  # API.md: a room id follows the user id rule


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json_body(schema: str, description: str) -> dict:
    return {
        "required": True,
        "description": description,
        "content": {JSON: {"schema": _ref("schemas", schema)}},
    }


def _ok(description: str, schema: str | None = None, **headers: str) -> dict:
    response: dict[str, Any] = {"description": description}
    if schema:
        response["content"] = {JSON: {"schema": _ref("schemas", schema)}}
    if headers:
        response["headers"] = {
            name.replace("_", "-"): _ref("headers", ref) for name, ref in headers.items()
        }
    return response


def _errors(*statuses: int) -> dict:
    return {str(status): _ref("responses", _ERROR_RESPONSES[status][0]) for status in statuses}


# status: (component name, when, extra headers)
_ERROR_RESPONSES: dict[int, tuple[str, str, dict]] = {
    400: ("MalformedJSON", "the body is not valid JSON (`malformed_json`)", {}),
    401: (
        "Unauthorized",
        "no valid bearer token: missing, malformed, badly signed, expired, or issued before "
        "the account was created or its password last set (`unauthorized`)",
        {"WWW-Authenticate": "WWWAuthenticate"},
    ),
    403: (
        "Forbidden",
        "the token belongs to another user, or `current_password` is wrong (`forbidden`)",
        {},
    ),
    404: ("NotFound", "no such user, or a path parameter that breaks its rule (`not_found`)", {}),
    409: (
        "Conflict",
        "the id or the username (compared without case) is taken; `fields` names it (`conflict`)",
        {},
    ),
    412: (
        "PreconditionFailed",
        "`If-Match` does not match the current version; `ETag` carries "
        "it when the user exists (`precondition_failed`)",
        {"ETag": "ETagOptional"},
    ),
    408: (
        "RequestTimeout",
        "the body took longer than `BODY_TIMEOUT` seconds to arrive; the connection is closed "
        "(`request_timeout`)",
        {},
    ),
    413: ("PayloadTooLarge", "the body is larger than `MAX_BODY_BYTES` (`payload_too_large`)", {}),
    415: (
        "UnsupportedMediaType",
        "the body is not sent as JSON, or is compressed (`Content-Encoding`), which no route "
        "accepts (`unsupported_media_type`)",
        {},
    ),
    422: (
        "ValidationFailed",
        "a field breaks a rule, or an unknown field; `fields` maps each "
        "field to its messages (`validation_failed`)",
        {},
    ),
    429: (
        "TooManyRequests",
        "too many failed logins for this username lately; try again after `Retry-After` "
        "seconds (`too_many_requests`)",
        {"Retry-After": "RetryAfter"},
    ),
    503: (
        "Unavailable",
        "storage cannot answer right now (`unavailable`), or too many password hashes are "
        "waiting (`busy`); try again after `Retry-After` seconds",
        {"Retry-After": "RetryAfter"},
    ),
}

_HEADERS = {
    "ETag": {
        "description": 'the user\'s version as an entity tag, e.g. `"3"`',
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "ETagOptional": {
        "description": "the current version, when the user exists",
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Location": {
        "description": "where the new user lives, `/users/{user_id}`",
        "required": True,
        "schema": {"type": "string"},
    },
    "RetryAfter": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWWAuthenticate": {
        "description": "the Bearer challenge",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer"},
    },
}

_PARAMETERS = {
    "UserId": {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "1 to 64 of `A-Z a-z 0-9 _ -`; another shape is 404",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "RoomId": {
        "name": "room_id",
        "in": "path",
        "required": True,
        "description": "1 to 64 of `A-Z a-z 0-9 _ -`; another shape is 404",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'update only at this version: the `ETag` as given (`"3"`; `W/"3"` '
        "and `3` too), or `*` for any version. Any other value, or another version, "
        "is 412; with `If-Match` a missing user is never created.",
        "schema": {"type": "string"},
    },
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "the `ETag` you hold: 304 while the user is at that version",
        "schema": {"type": "string"},
    },
}

_DESCRIPTION = """User profiles over HTTP, and real-time profile changes over WebSocket rooms.

Every error is JSON of one shape, `{"error": {"code", "message", "fields"?}}` (the `Error`
schema), with the status that fits. A wrong method on a known path is 405 with an `Allow` header.
"""

_AUTH_ON = """Auth is on: a write to user X (profile, password, delete) needs
`Authorization: Bearer <token>` whose `sub` is X, from `POST /auth/token`. Reads stay open."""

_AUTH_OFF = """Auth is off on this server (`JWT_SECRET_KEY` is not set): anyone may change any
user, and `POST /auth/token` answers 404."""

_WS_DESCRIPTION = """Upgrades to a WebSocket in room `room_id`; all frames are JSON text.

Join as a member with `?user_id=X` (auth off) or `?token=<JWT>` (auth on; the user id then
comes from the token, `?user_id=` alone is 401); with neither, the connection watches the room
without being a member.

Server to client: first `{"type": "welcome", "room", "connection_id", "member_count",
"members"}` (at most 100 members; page the rest with `GET /rooms/{room_id}/members`); then
`{"type": "presence", "room", "joined": [user, ...], "left": [user_id, ...], "member_count"}`
(a user joins with their first connection and leaves with their last; changes within 100 ms are
coalesced), `{"type": "profile_updated", "room", "user_id", "profile", "version"}` (in version
order, once per connection), `{"type": "message", "room", "from", "data"}`, and
`{"type": "error", "code", "message"}` for a bad client frame (the connection stays).

Client to server: `{"type": "message", "data": ...}` (at most 8 KiB) and `{"type": "ping"}`
(answered by `pong`). A slow consumer is closed with 1013; shutdown closes every socket
with 1001."""


_WS_REFUSALS = """

Refused before the upgrade, as a JSON error: a plain HTTP request (426), a `user_id` that
breaks the id rule (422), a user that does not exist (404), a bad or expired token (401),
storage down (503)."""


def _operations(auth: bool) -> dict[tuple[str, str], dict]:
    """Every operation of the contract, keyed by (method, path)."""
    secured = {"security": [{"bearerAuth": []}]} if auth else {}
    auth_errors = (401, 403) if auth else ()
    user = _ok("the user", "User", ETag="ETag")
    return {
        ("get", "/"): {
            "summary": "liveness",
            "tags": ["health"],
            "responses": {"200": _ok("the service runs", "Liveness")},
        },
        ("get", "/health/ready"): {
            "summary": "readiness: storage answers",
            "tags": ["health"],
            "responses": {"200": _ok("storage answers", "Readiness"), **_errors(503)},
        },
        ("post", "/users"): {
            "summary": "create a user",
            "tags": ["users"],
            "description": "Open, with auth on too. Without `id` the user gets a random one.",
            "requestBody": _json_body("NewUser", "the profile, with optional `password` and `id`"),
            "responses": {
                "201": _ok("created", "User", ETag="ETag", Location="Location"),
                **_errors(400, 408, 409, 413, 415, 422, 503),
            },
        },
        ("get", "/users/{user_id}"): {
            "summary": "read a user",
            "tags": ["users"],
            "parameters": ["UserId", "IfNoneMatch"],
            "responses": {
                "200": user,
                "304": _ok("not modified since the `If-None-Match` version", ETag="ETag"),
                **_errors(404, 503),
            },
        },
        ("put", "/users/{user_id}/profile"): {
            "summary": "partial update of a profile; creates a missing user",
            "tags": ["users"],
            "description": "Fields present are set, `null` clears one; an empty body is 422. "
            "A missing user is created (201) when the body has a `username` and there is no "
            "`If-Match`; without a username that is 422. Broadcasts `profile_updated`."
            + (" Creating user X needs X's token, like any write to X." if auth else ""),
            "parameters": ["UserId", "IfMatch"],
            "requestBody": _json_body("ProfileUpdate", "the fields to set or clear"),
            "responses": {
                "200": user,
                "201": _ok("created", "User", ETag="ETag", Location="Location"),
                **_errors(400, *auth_errors, 404, 408, 409, 412, 413, 415, 422, 503),
            },
            **secured,
        },
        ("put", "/users/{user_id}/password"): {
            "summary": "set the password",
            "tags": ["users"],
            "description": "`current_password`, when given, must match (403)"
            + (
                "; with auth on it is required to change an existing password (422). The "
                "tokens issued before stop working: log in again with the new password"
                if auth
                else ""
            )
            + ". Of two changes racing over one password, the second gets 409. Not a profile "
            "change: `version` does not move and nothing is broadcast.",
            "parameters": ["UserId"],
            "requestBody": _json_body("PasswordChange", "the new password"),
            "responses": {
                "200": _ok("the password is set", "PasswordUpdated"),
                **_errors(400, *auth_errors, 403, 404, 408, 409, 413, 415, 422, 503),
            },
            **secured,
        },
        ("delete", "/users/{user_id}"): {
            "summary": "delete a user",
            "tags": ["users"],
            "parameters": ["UserId"],
            "responses": {"204": _ok("deleted"), **_errors(*auth_errors, 404, 503)},
            **secured,
        },
        ("get", "/rooms/{room_id}/members"): {
            "summary": "the users present in a room, paged",
            "tags": ["rooms"],
            "parameters": [
                "RoomId",
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "`next_cursor` of the previous page",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {"200": _ok("a page of members", "Members"), **_errors(404, 422, 503)},
        },
        ("get", "/ws/{room_id}"): {
            "summary": "join a room over WebSocket",
            "tags": ["rooms"],
            "description": _WS_DESCRIPTION + _WS_REFUSALS,
            "parameters": [
                "RoomId",
                {
                    "name": "token",
                    "in": "query",
                    "required": False,
                    "description": "auth on: the JWT from `POST /auth/token`",
                    "schema": {"type": "string"},
                }
                if auth
                else {
                    "name": "user_id",
                    "in": "query",
                    "required": False,
                    "description": "auth off: join as this user; without it, watch",
                    "schema": {"type": "string", "pattern": ID_PATTERN},
                },
            ],
            "responses": {
                "101": _ok("switching to the WebSocket protocol"),
                "426": _ok("a plain HTTP request, not a WebSocket handshake", "Error"),
                **_errors(*((401,) if auth else ()), 404, 422, 503),
            },
        },
        ("post", "/auth/token"): {
            "summary": "a token for a username and password",
            "tags": ["auth"],
            "description": "Wrong password and unknown username give the same 401, in the "
            "same time. After five failures in a row for one username, further attempts "
            "for it wait (429 with `Retry-After`, doubling up to 5 minutes). A hash of an "
            "older scheme is re-hashed on success. The token is good until it expires, "
            "the password is set again, or the account is deleted.",
            "requestBody": _json_body("TokenRequest", "the credentials"),
            "responses": {
                "200": _ok("an HS256 JWT whose `sub` is the user id", "Token"),
                **_errors(400, 401, 408, 413, 415, 422, 429, 503),
            },
        }
        if auth
        else {
            "summary": "a token (auth is off here: 404)",
            "tags": ["auth"],
            "description": _AUTH_OFF,
            "responses": _errors(404),
        },
        ("get", "/openapi.json"): {
            "summary": "this document",
            "tags": ["docs"],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        },
        ("get", "/docs"): {
            "summary": "this document as a page",
            "tags": ["docs"],
            "responses": {
                "200": {
                    "description": "HTML",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        },
    }


def build_document(settings: Settings, routed: set[tuple[str, str]]) -> dict:
    """The document for ``settings``, with the operations in ``routed`` ((method, path) pairs)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="svc",
        version=__version__,
        openapi_version="3.1.0",
        plugins=[plugin],
        info={
            "description": _DESCRIPTION + "\n" + (_AUTH_ON if settings.auth_enabled else _AUTH_OFF)
        },
    )
    plugin.converter.add_attribute_function(_contract_rules)
    for name, schema in [
        ("NewUser", NewUserSchema),
        ("ProfileUpdate", ProfileSchema),
        ("PasswordChange", PasswordSchema),
        ("TokenRequest", TokenRequestSchema),
        ("Profile", ProfileOutSchema),
        ("User", UserSchema),
        ("ErrorDetail", ErrorDetailSchema),
        ("Error", ErrorSchema),
        ("Token", TokenSchema),
        ("PasswordUpdated", PasswordUpdatedSchema),
        ("Liveness", LivenessSchema),
        ("Readiness", ReadinessSchema),
        ("Members", MembersSchema),
    ]:
        # An update must change something (ProfileSchema refuses {}).
        extra = {"minProperties": 1} if schema is ProfileSchema else None
        spec.components.schema(name, extra, schema=schema)
    for name, header in _HEADERS.items():
        spec.components.header(name, header)
    for name, parameter in _PARAMETERS.items():
        spec.components.parameter(name, parameter["in"], parameter)
    for name, when, headers in _ERROR_RESPONSES.values():
        response: dict[str, Any] = {
            "description": when,
            "content": {JSON: {"schema": _ref("schemas", "Error")}},
        }
        if headers:
            response["headers"] = {h: _ref("headers", ref) for h, ref in headers.items()}
        spec.components.response(name, response)
    if settings.auth_enabled:
        spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        )
    by_path: dict[str, dict] = {}
    for (method, path), operation in _operations(settings.auth_enabled).items():
        if (method, path) in routed:
            by_path.setdefault(path, {})[method] = operation
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _contract_rules(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: say what the server checks, in JSON Schema words."""
    if isinstance(field, fields.Dict):
        # apispec writes Length on a Dict as maxLength; for an object it is maxProperties.
        for length, properties in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
            if length in ret:
                ret[properties] = ret.pop(length)
        if field.key_field is not None:
            names = self.field2property(field.key_field)
            names.pop("type", None)
            if names:
                ret["propertyNames"] = names
    if isinstance(field, fields.Url):
        # "url" is no JSON Schema format; the pattern the server also checks says it.
        ret.pop("format", None)
    if "pattern" in ret:
        ret["pattern"] = _ecma(ret["pattern"])
    return {}


def routed_operations(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "OPTIONS")
    }


def setup(app: web.Application, settings: Settings) -> None:
    """Add ``/openapi.json`` and ``/docs``, describing every route added so far."""
    app.router.add_get("/openapi.json", _serve_json)
    app.router.add_get("/docs", _serve_html)
    document = build_document(settings, routed_operations(app))
    app[OPENAPI_JSON] = json.dumps(document, separators=(",", ":")).encode()
    app[DOCS_HTML] = render(document).encode()


async def _serve_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type=JSON)


async def _serve_html(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCS_HTML], content_type="text/html", charset="utf-8")
