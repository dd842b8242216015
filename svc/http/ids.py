"""The id rules and the route patterns built from them (a leaf: everyone imports it).

A user id and a room id follow one rule: 1 to 64 of ``[A-Za-z0-9_-]``.  In a
route pattern an id that breaks it is simply no such resource (404).
"""

from __future__ import annotations

import re

#: The characters and length of a user id or a room id.
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
#: Human wording of the rule, for validation messages.
ID_RULE = "1 to 64 of A-Z, a-z, 0-9, _ and -"
#: The whole value: \Z, not $ (Python's $ also matches before a trailing newline, so
#: "ada\n" would pass).  schemas.py validates with it; components.py states it in JSON Schema.
WHOLE_ID_PATTERN = rf"^{ID_PATTERN}\Z"

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


#: Route placeholders.
USER_ID = "{user_id:" + ID_PATTERN + "}"
ROOM_ID = "{room_id:" + ID_PATTERN + "}"
