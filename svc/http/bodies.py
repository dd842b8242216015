"""Reading a JSON request body into a validated dict."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from marshmallow import Schema

from ..keys import SETTINGS
from .errors import APIError


async def read_json(
    request: web.Request,
    schema: Schema,
    plain: Callable[[Any], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The body, loaded through ``schema`` (or by ``plain``, a fast path that returns what
    the schema would for the bodies it takes, None for the others).

    415 when it is not declared as JSON, 400 when it does not parse (nesting too
    deep for the parser included), 408 when it takes longer than
    ``BODY_TIMEOUT`` to arrive (a client feeding it a byte at a time holds a
    connection and a task), 413 (from aiohttp) past the size limit, and 422
    (marshmallow's ValidationError, mapped by :func:`.errors.answer`) when a field
    breaks a rule, text that is not valid Unicode included.
    """
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise APIError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    if request.content.is_eof():
        # The whole body is already here (a small body nearly always is): nothing to wait
        # for, and no timer or task (asyncio.wait_for makes both: ~4 % of a PUT, py-spy).
        raw = await request.read()
    else:
        raw = await _read_within(request, request.app[SETTINGS].body_timeout)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "malformed_json", "the body nests too deeply") from None
    # Text that is not valid Unicode (JSON may escape half a surrogate pair, "\ud800") is
    # refused by the schemas' field rules (schemas.no_lone_surrogates): 422 naming the field.
    if plain is not None and (loaded := plain(data)) is not None:
        return loaded
    return schema.load(data)


async def _read_within(request: web.Request, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        error = APIError(
            408, "request_timeout", f"the request body did not arrive within {timeout:g} s"
        )
        error.force_close()  # the rest of the body would be read as the next request
        raise error from None
