"""A profile update of plain text fields, accepted without marshmallow.

Most profile updates set a name, a bio or a username: a few strings.  Loading them through
``ProfileSchema`` (field objects, validators, error bookkeeping) was 14 % of a
``PUT /users/{id}/profile`` on Postgres (py-spy; bench/README.md, "Performance III"), the
largest thing svc adds over a bare aiohttp + aiopg handler.  So a body whose every field is
one of those, and passes the very rules the schema declares, is accepted here; anything
else (another field, another type, a rule broken, an empty body) is left to the schema,
which answers it as before.  The result is what ``profile_schema.load`` returns, in its
order (tests/test_plain_profile.py holds the two equal for any body).
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import validate

from .schemas import _LONE_SURROGATE, USERNAME_PATTERN, ProfileSchema


def _longest(name: str) -> int:
    """The ``Length(max=…)`` the schema declares for ``name``: each limit is written once."""
    field = ProfileSchema._declared_fields[name]
    return next(rule.max for rule in field.validators if isinstance(rule, validate.Length))


#: The free-text fields (``schemas.text`` rules, ``null`` clears one) and their longest.
_TEXT = {name: _longest(name) for name in ("display_name", "bio")}
_USERNAME = re.compile(USERNAME_PATTERN).match
#: The schema's field order: ``load`` returns its fields in it.
_ORDER = tuple(name for name in ProfileSchema._declared_fields if name in {*_TEXT, "username"})


def plain_profile_update(data: Any) -> dict[str, Any] | None:
    """``data`` as the schema would load it, or None: the schema decides."""
    if type(data) is not dict or not data:
        return None
    for name, value in data.items():
        if name == "username":
            if type(value) is not str or _USERNAME(value) is None:
                return None
            continue
        longest = _TEXT.get(name)
        if longest is None:
            return None
        if value is None:
            continue
        if (
            type(value) is not str
            or len(value) > longest
            or "\0" in value
            or _LONE_SURROGATE.search(value)
        ):
            return None
    return {name: data[name] for name in _ORDER if name in data}
