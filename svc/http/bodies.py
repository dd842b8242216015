"""Reading a JSON request body into a validated dict."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from marshmallow import Schema

from .errors import APIError


async def read_json(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The body, loaded through ``schema``.

    415 when it is not declared as JSON, 400 when it does not parse, 413 (from
    aiohttp) past the size limit, 422 (marshmallow's ValidationError, mapped by
    the error middleware) when a field breaks a rule.
    """
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise APIError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    return schema.load(data)
