"""marshmallow schemas for every request body, with the field rules of docs/api.md.

Unknown fields are rejected (marshmallow's default ``RAISE``).  The schemas
are built once, at import, and reused for every request.
"""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .ids import ID_RULE, WHOLE_ID_PATTERN

# \Z, not $: Python's $ also matches before a trailing newline, so "ada\n" would pass.
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}\Z"
MAX_URL_LENGTH = 2048
# An http(s) URL with a DNS name (a dotted one ends in a label of 2+ characters), an IPv4
# address, or one label (localhost); an optional port; then printable ASCII (non-ASCII is
# percent-encoded).  Checked on top of marshmallow's Url, which accepts a subset-compatible
# superset, so the OpenAPI document can state the rule exactly.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HTTP_URL_PATTERN = (
    rf"^https?://(?:(?:{_LABEL}\.)+[A-Za-z0-9][A-Za-z0-9-]{{0,61}}[A-Za-z0-9]|{_LABEL}"
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::[0-9]{1,5})?(?:/|[/?][!-~]+)?\Z"
)

user_id_rule = validate.Regexp(WHOLE_ID_PATTERN, error=f"must be {ID_RULE}")
# PostgreSQL text and jsonb cannot hold U+0000, so no backend takes it: the same 422 on each.
no_nul = validate.Regexp(r"^[^\u0000]*\Z", error="must not contain the character U+0000")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Most email systems refuse longer addresses (RFC 5321: a path is at most 256 octets).
MAX_EMAIL_LENGTH = 254


def no_lone_surrogates(value: str) -> str:
    """JSON may escape half a UTF-16 pair (``"\\ud800"``); no UTF-8 can carry it, so
    Postgres would fail on it where memory stored it.  Refused alike everywhere, and
    before any password is hashed (a 500 at login would tell which users exist)."""
    if _LONE_SURROGATE.search(value):
        raise ValidationError("must not contain an unpaired surrogate (U+D800 to U+DFFF)")
    return value


#: Every free-text field: no U+0000, no lone surrogate.
text = [no_nul, no_lone_surrogates]


def _http_url(**kwargs) -> fields.Url:
    return fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=[
            validate.Length(max=MAX_URL_LENGTH),
            validate.Regexp(HTTP_URL_PATTERN, error="must be an http(s) URL"),
        ],
        **kwargs,
    )


class ProfileSchema(Schema):
    """The profile fields; on an update, a field present is set and ``null`` clears it."""

    display_name = fields.String(allow_none=True, validate=[validate.Length(max=100), *text])
    username = fields.String(
        validate=validate.Regexp(USERNAME_PATTERN, error="must be 3 to 32 of A-Z a-z 0-9 _ . -"),
    )
    bio = fields.String(allow_none=True, validate=[validate.Length(max=1000), *text])
    email = fields.Email(
        allow_none=True, validate=[validate.Length(max=MAX_EMAIL_LENGTH), no_lone_surrogates]
    )
    avatar_url = _http_url(allow_none=True)
    avatar_urls = fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1, max=64), *text]),
        values=_http_url(),
        allow_none=True,
        validate=validate.Length(max=16, error="at most 16 entries"),
    )

    @validates_schema
    def _not_empty(self, data, **kwargs):
        # An empty update would bump the version and broadcast a change of nothing.
        if not data:
            raise ValidationError("give at least one profile field")


class NewUserSchema(ProfileSchema):
    """``POST /users``: a profile with a username, an optional password and id."""

    username = fields.String(
        required=True, validate=ProfileSchema._declared_fields["username"].validate
    )
    password = fields.String(
        load_only=True, validate=[validate.Length(min=8, max=1024), no_lone_surrogates]
    )
    id = fields.String(validate=user_id_rule)


class PasswordSchema(Schema):
    new_password = fields.String(
        required=True, validate=[validate.Length(min=8, max=1024), no_lone_surrogates]
    )
    current_password = fields.String(validate=[validate.Length(max=1024), no_lone_surrogates])


class TokenRequestSchema(Schema):
    username = fields.String(required=True, validate=[validate.Length(min=1, max=32), *text])
    password = fields.String(
        required=True, validate=[validate.Length(min=1, max=1024), no_lone_surrogates]
    )


# partial=True: no field of an update is required anyway, and marshmallow then skips each
# absent field outright instead of running a closure and the field's deserialize to find
# it missing (5 of 6 fields in a typical update: ~a quarter of the load's CPU).
profile_schema = ProfileSchema(partial=True)
new_user_schema = NewUserSchema()
password_schema = PasswordSchema()
token_request_schema = TokenRequestSchema()
