"""Reading a JSON request body into a validated dict."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web
from marshmallow import Schema

from ..keys import SETTINGS
from .errors import APIError


async def read_json(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The body, loaded through ``schema``.

    415 when it is not declared as JSON, 400 when it does not parse (nesting too
    deep for the parser included), 408 when it takes longer than
    ``BODY_TIMEOUT`` to arrive (a client feeding it a byte at a time holds a
    connection and a task), 413 (from aiohttp) past the size limit, 422 when
    text is not valid Unicode, and 422 (marshmallow's ValidationError, mapped by
    the error middleware) when a field breaks a rule.
    """
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise APIError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    timeout = request.app[SETTINGS].body_timeout
    try:
        raw = await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        error = APIError(
            408, "request_timeout", f"the request body did not arrive within {timeout:g} s"
        )
        error.force_close()  # the rest of the body would be read as the next request
        raise error from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "malformed_json", "the body nests too deeply") from None
    where = _lone_surrogate(data)
    if where is not None:
        # JSON may escape half a surrogate pair ("\ud800"); no backend can store it
        # (PostgreSQL refuses it, bcrypt cannot encode it), so no backend takes it.
        fields = {where: [_NOT_UNICODE]} if where else None
        raise APIError(422, "validation_failed", f"the body {_NOT_UNICODE}", fields)
    return schema.load(data)


_NOT_UNICODE = "holds text that is not valid Unicode (a lone surrogate, U+D800 to U+DFFF)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(data: Any) -> str | None:
    """Where the first string (key or value) holding a lone surrogate is: its top-level
    field's name, ``""`` when it is not under a clean top-level key, or None if there is none.
    Iterative: a body may nest as deep as the parser allowed."""
    stack = [(data, "")]
    if isinstance(data, dict):
        stack = [(value, key) for key, value in data.items()]
        for key in data:
            if _SURROGATE.search(key):
                return ""
    while stack:
        value, top = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return top
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return top
                stack.append((item, top))
        elif isinstance(value, list):
            stack.extend((item, top) for item in value)
    return None
