"""The reusable parts of the OpenAPI document that operations name: the schemas of what the
server sends (request bodies are the marshmallow schemas that validate them, in schemas.py),
path and header parameters, and response headers.

These schemas are documentation: the server builds its JSON elsewhere (``svc.serialize``,
``svc.rooms.frames``), and the tests hold every real answer and frame to them.
"""

from __future__ import annotations

import copy

from marshmallow import Schema, fields, validate

from ..rooms.limits import RoomSettings
from ..storage import PROFILE_FIELDS
from .ids import ID_RULE, WHOLE_ID_PATTERN
from .schemas import ProfileSchema

#: The coalescing window of presence frames, stated once for every text that mentions it.
PRESENCE_WINDOW_MS = round(RoomSettings.presence_window * 1000)
WELCOME_MEMBERS = RoomSettings.welcome_members
MAX_MESSAGE_KIB = RoomSettings.max_message_data // 1024


def ecma(pattern: str) -> str:
    """A Python pattern ending in \\Z as JSON Schema says it: there, $ means end of input."""
    return pattern[:-2] + "$" if pattern.endswith(r"\Z") else pattern


ID_PATTERN = ecma(WHOLE_ID_PATTERN)  # docs/api.md: a room id follows the user id rule


def ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def component(name: str, **kwargs) -> fields.Raw:
    """A field whose JSON Schema is a reference to a component written as JSON Schema
    (``openapi._component_refs`` turns the metadata into the ``$ref``)."""
    return fields.Raw(metadata={"component": name}, **kwargs)


# --- users ----------------------------------------------------------------------------


def _as_read(field: fields.Field) -> fields.Field:
    field = copy.copy(field)
    field.required = True
    # docs/api.md: "a field never set is null" (a user created by PUT may have no username yet).
    field.allow_none = True
    return field


# A profile as read: the input rules, and every field is there (``null`` when never set).
ProfileOutSchema = Schema.from_dict(
    {name: _as_read(field) for name, field in ProfileSchema._declared_fields.items()},
    name="ProfileOutSchema",
)


class UserSchema(Schema):
    id = fields.String(required=True, metadata={"description": "the user id"})
    user_id = fields.String(required=True, metadata={"description": "the same as `id`"})
    profile = fields.Nested(
        ProfileOutSchema,
        required=True,
        metadata={"description": "`email` is `null` unless the reader is its owner (auth on)"},
    )
    version = fields.Integer(
        required=True,
        validate=validate.Range(min=1),
        metadata={"description": "1 when created, one more with every change"},
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


# A present id without a stored user (svc.serialize.ProfilelessMember): joined a room before
# creating a profile, or deleted while connected.  Its first profile change then arrives as
# `profile_updated` at version 1.
PROFILELESS_MEMBER = {
    "type": "object",
    "description": "a member without a stored user: version 0, every field null",
    "properties": {
        "id": {"type": "string", "pattern": ID_PATTERN},
        "user_id": {"type": "string", "pattern": ID_PATTERN},
        "profile": {
            "type": "object",
            "properties": {name: {"type": "null"} for name in PROFILE_FIELDS},
            "required": list(PROFILE_FIELDS),
            "additionalProperties": False,
        },
        "version": {"const": 0},
        "created_at": {"type": "null"},
        "updated_at": {"type": "null"},
    },
    "required": ["id", "user_id", "profile", "version", "created_at", "updated_at"],
    "additionalProperties": False,
}

MEMBER = {
    "description": "a user present in a room: a stored user, or a profileless member",
    "oneOf": [ref("User"), ref("ProfilelessMember")],
}


class MembersSchema(Schema):
    members = fields.List(component("Member"), required=True)
    member_count = fields.Integer(required=True, validate=validate.Range(min=0))
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "pass as `?cursor=` for the next page; null on the last"},
    )


# --- other answers --------------------------------------------------------------------


class ErrorDetailSchema(Schema):
    code = fields.String(
        required=True, metadata={"description": "see the error catalogue (docs/api-errors.md)"}
    )
    message = fields.String(required=True, metadata={"description": "for people; may change"})
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


# --- WebSocket frames (server to client) ----------------------------------------------
# OpenAPI cannot attach these to an operation; GET /ws/{room_id} names them in words.


def _frame_type(name: str) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf([name]))


def _seq() -> fields.Integer:
    return fields.Integer(
        validate=validate.Range(min=0),
        metadata={
            "description": "the number of the last room event this frame shows, where the "
            "broker numbers events (resume: docs/resume.md); a repair carries none"
        },
    )


class WelcomeFrameSchema(Schema):
    type = _frame_type("welcome")
    room = fields.String(required=True)
    connection_id = fields.String(required=True)
    member_count = fields.Integer(required=True, validate=validate.Range(min=0))
    members = fields.List(
        component("Member"),
        validate=validate.Length(max=WELCOME_MEMBERS),
        metadata={
            "description": "page the rest with GET /rooms/{room_id}/members; absent from a "
            "resumed welcome (the client keeps its own)"
        },
    )
    epoch = fields.String(metadata={"description": "names the room's history (resume)"})
    seq = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "the last room event the state includes (resumed: `since`)"},
    )
    resumed = fields.Boolean(
        metadata={"description": "only with `?since=`: whether the missed events follow"}
    )


class PresenceFrameSchema(Schema):
    type = _frame_type("presence")
    room = fields.String(required=True)
    joined = fields.List(component("Member"), required=True)
    left = fields.List(fields.String(), required=True, metadata={"description": "user ids"})
    member_count = fields.Integer(required=True, validate=validate.Range(min=0))
    seq = _seq()


class ProfileUpdatedFrameSchema(UserSchema):
    """The whole user record, as in every REST body, with the frame's type and room."""

    type = _frame_type("profile_updated")
    room = fields.String(required=True)
    seq = _seq()


class MessageFrameSchema(Schema):
    type = _frame_type("message")
    room = fields.String(required=True)
    seq = _seq()
    sender = fields.String(data_key="from", required=True, metadata={"description": "user id"})
    data = fields.Raw(required=True, metadata={"description": "any JSON the member sent"})


class ErrorFrameSchema(Schema):
    type = _frame_type("error")
    code = fields.String(required=True)
    message = fields.String(required=True)


class PongFrameSchema(Schema):
    type = _frame_type("pong")


#: name → marshmallow schema (converted by apispec) or JSON Schema (as written).
SCHEMAS: dict[str, type[Schema] | dict] = {
    "Profile": ProfileOutSchema,
    "User": UserSchema,
    "ProfilelessMember": PROFILELESS_MEMBER,
    "Member": MEMBER,
    "Members": MembersSchema,
    "ErrorDetail": ErrorDetailSchema,
    "Error": ErrorSchema,
    "Token": TokenSchema,
    "PasswordUpdated": PasswordUpdatedSchema,
    "Liveness": LivenessSchema,
    "Readiness": ReadinessSchema,
    "WelcomeFrame": WelcomeFrameSchema,
    "PresenceFrame": PresenceFrameSchema,
    "ProfileUpdatedFrame": ProfileUpdatedFrameSchema,
    "MessageFrame": MessageFrameSchema,
    "ErrorFrame": ErrorFrameSchema,
    "PongFrame": PongFrameSchema,
}

_ID_RULE = f"{ID_RULE}; another shape is 404"

PARAMETERS: dict[str, dict] = {
    "UserId": {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": _ID_RULE,
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "RoomId": {
        "name": "room_id",
        "in": "path",
        "required": True,
        "description": _ID_RULE,
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

_ENTITY_TAG = {"type": "string", "pattern": '^"[0-9]+"$'}

HEADERS: dict[str, dict] = {
    "ETag": {
        "description": 'the user\'s version as an entity tag, e.g. `"3"`',
        "required": True,
        "schema": _ENTITY_TAG,
    },
    "Location": {
        "description": "where the new user lives, `/users/{user_id}`",
        "required": True,
        "schema": {"type": "string"},
    },
}

#: The headers of error answers, by the names errors.CATALOGUE uses: there when they apply.
ERROR_HEADERS: dict[str, dict] = {
    "ETag": {"description": "the current version, when the user exists", "schema": _ENTITY_TAG},
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "the Bearer challenge, when a token is missing or not valid",
        "schema": {"type": "string", "pattern": "^Bearer"},
    },
    "Allow": {"description": "the methods the path has", "schema": {"type": "string"}},
    "Upgrade": {"description": "`websocket`", "schema": {"type": "string"}},
}
