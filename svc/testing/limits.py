"""The longest profile HTTP accepts, built from svc's own request schemas (never a copy of
their limits), for the storage conformance suite: whatever a client may send, a backend
must keep whole.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from ..http.schemas import profile_schema

#: Cycled to fill free text: a character of 1, 2, 3 and 4 UTF-8 bytes (and a UTF-16
#: pair), so a limit counted in bytes instead of characters cannot pass.
FILLER = "aé東🚀"


def max_length(field: fields.Field) -> int:
    """The ``Length(max=...)`` a schema field declares; for a field limited only by its
    pattern (``username``), the longest run of ``a`` that the field accepts."""
    limits = [v.max for v in field.validators if isinstance(v, validate.Length) and v.max]
    if limits:
        return min(limits)
    accepted = [n for n in range(1, 1025) if _accepts(field, "a" * n)]
    assert accepted, f"svc.testing cannot tell the longest value of {field!r}"
    return max(accepted)


def _accepts(field: fields.Field, value: Any) -> bool:
    try:
        field.deserialize(value)
    except Exception:
        return False
    return True


def _filled(length: int, tail: str = "") -> str:
    body = (FILLER * length)[: length - len(tail)]
    return body + tail


def _url(length: int, tail: str) -> str:
    head = "https://example.com/"
    return head + ("p" * length)[: length - len(head) - len(tail)] + tail


def _email(length: int, tail: str) -> str:
    """An address of exactly ``length`` characters: a local part of 64 (the most one may
    have), then labels of at most 63 and a top-level one of 2 or more."""
    local = ("x" * 64 + tail)[-64:]
    labels, rest = [], length - len(local) - 1
    while rest > 63:
        label = min(63, rest - 3)  # leave room for a dot and a 2-character top level
        labels.append("d" * label)
        rest -= label + 1
    return f"{local}@{'.'.join([*labels, 'c' * rest])}"


def longest_profile(tail: str) -> dict[str, Any]:
    """Every profile field at the longest HTTP accepts; ``tail`` (a unique id) ends the
    username so each call's is distinct.  Checked against the schema, so a change there
    is followed here."""
    f = profile_schema.fields
    urls = f["avatar_urls"]
    entries = max_length(urls)
    key_length, url_length = max_length(urls.key_field), max_length(urls.value_field)
    profile = {
        "display_name": _filled(max_length(f["display_name"])),
        "username": ("a" * 64 + tail)[-max_length(f["username"]) :],
        "bio": _filled(max_length(f["bio"])),
        "email": _email(max_length(f["email"]), tail[-8:]),
        "avatar_url": _url(max_length(f["avatar_url"]), tail),
        "avatar_urls": {
            _filled(key_length, f"{i:02}"): _url(url_length, f"{i:02}") for i in range(entries)
        },
    }
    errors = profile_schema.validate(profile)
    assert not errors, f"svc.testing's longest profile is out of step with the schema: {errors}"
    return profile
