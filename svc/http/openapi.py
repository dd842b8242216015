"""``GET /openapi.json``: the OpenAPI 3.1 document, assembled from the router.

Every route's handler carries its operation (``@documented``, operation.py); this module
walks the router and refuses to build the document, so the app refuses to start, when a
route has none.  Request bodies are the marshmallow schemas that validate them (through
apispec), error answers come from the one error catalogue (``errors.CATALOGUE``), and
the schemas of what the server sends are in components.py.

The document is the same whichever mode the server runs in (a client generated against
a development server must work against production): the bearer scheme and the 401/403
answers are always there, saying that they apply when auth is on.  It is built once,
when the app is created, and served as cached bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from inspect import unwrap
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from .. import __version__
from ..keys import OPENAPI_JSON
from . import components, docs, routing
from .components import ecma, ref
from .errors import CATALOGUE, kinds_of
from .operation import JSON, Operation, Reply, documented, operation_of
from .schemas import NewUserSchema, PasswordSchema, ProfileSchema, TokenRequestSchema

#: Request bodies under the names the document has always used.
REQUEST_BODIES: dict[str, type[Schema]] = {
    "NewUser": NewUserSchema,
    "ProfileUpdate": ProfileSchema,
    "PasswordChange": PasswordSchema,
    "TokenRequest": TokenRequestSchema,
}

DESCRIPTION = """User profiles over HTTP, and real-time profile changes over WebSocket rooms.

Every error is JSON of one shape, `{"error": {"code", "message", "fields"?}}` (the `Error`
schema), with the status that fits; each operation lists the statuses it can answer, and
each status its codes (the whole table is `docs/api-errors.md` in svc's repository). A wrong
method on a known path is 405 (`method_not_allowed`) with an `Allow` header.

**Auth.** This document is the same whether the server runs with auth on
(`JWT_SECRET_KEY` set) or off. With auth on, a write to user X (profile, password, delete)
needs `Authorization: Bearer <token>` whose `sub` is X, from `POST /auth/token`: 401 without
a valid token, 403 with another user's. Those operations name the `bearerAuth` scheme as
optional, because with auth off no token is needed (and one sent is ignored): a client
should send its token whenever it has one. Reads stay open in both modes; `email` is shown
only to its owner when auth is on."""

OWNER_ONLY = (
    "\n\n**Auth on:** needs `Authorization: Bearer <token>` of the user in the path "
    "(401 without a valid token, 403 for another user's). **Auth off:** no token needed."
)


class UndocumentedRoute(RuntimeError):
    """A route whose handler carries no ``@documented`` operation."""


class BadOperation(ValueError):
    """An operation that names something the document does not have."""


def build_document(routes: Iterable[web.AbstractRoute]) -> dict:
    """The document of ``routes``; every one (but HEAD and OPTIONS) must be documented."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="svc",
        version=__version__,
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    plugin.converter.add_attribute_function(_contract_rules)
    plugin.converter.add_attribute_function(_component_refs)
    for name, schema in REQUEST_BODIES.items():
        # An update must change something (ProfileSchema refuses {}).
        extra = {"minProperties": 1} if schema is ProfileSchema else None
        spec.components.schema(name, extra, schema=schema)
    for name, schema in components.SCHEMAS.items():
        if isinstance(schema, dict):
            spec.components.schema(name, schema)
        else:
            spec.components.schema(name, schema=schema)
    for name, header in components.HEADERS.items():
        spec.components.header(name, header)
    for name, parameter in components.PARAMETERS.items():
        spec.components.parameter(name, parameter["in"], parameter)
    for status in sorted({kind.status for kind in CATALOGUE}):
        spec.components.response(_error_name(status), _error_response(status))
    spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "auth on only (`JWT_SECRET_KEY` set): the token of `POST /auth/token`",
        },
    )

    by_path: dict[str, dict[str, dict]] = {}
    undocumented = []
    for route in routes:
        # "*": a catch-all method (svc adds none; aiohttp answers 405 for what no route has)
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        operation = operation_of(route.handler)
        path = route.resource.canonical
        if operation is None:
            undocumented.append(f"{route.method} {path} ({route.handler.__qualname__})")
            continue
        try:
            by_path.setdefault(path, {})[route.method.lower()] = _operation(operation)
        except BadOperation as exc:
            raise BadOperation(f"{route.method} {path}: {exc}") from None
    if undocumented:
        raise UndocumentedRoute(
            "routes without an OpenAPI operation: "
            + ", ".join(undocumented)
            + "; decorate each handler with svc.http.operation.documented(...)"
        )
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(op: Operation) -> dict[str, Any]:
    description, errors = op.description, set(op.errors)
    out: dict[str, Any] = {"summary": op.summary, "tags": [op.tag]}
    if op.owner_only:
        description += OWNER_ONLY
        errors |= {401, 403}
        out["security"] = [{"bearerAuth": []}, {}]
    if description:
        out["description"] = description
    if op.parameters:
        out["parameters"] = [_parameter(p) for p in op.parameters]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "description": op.body_description,
            "content": {JSON: {"schema": op.body}},
        }
    responses: dict[str, Any] = {str(s): _reply(r) for s, r in sorted(op.replies.items())}
    for status in sorted(errors):
        if not kinds_of(status):
            raise BadOperation(f"error status {status} is not in the error catalogue")
        responses[str(status)] = ref(_error_name(status), "responses")
    out["responses"] = responses
    return out


def _parameter(parameter: str | dict) -> str | dict:
    if isinstance(parameter, dict):
        return parameter
    if parameter not in components.PARAMETERS:
        raise BadOperation(f"no parameter component {parameter!r}")
    return parameter  # apispec makes a component's name its $ref


def _reply(reply: Reply) -> dict:
    out: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        schema = reply.schema
        if isinstance(schema, str):
            if schema not in components.SCHEMAS:
                raise BadOperation(f"no schema component {schema!r}")
            schema = ref(schema)
        media = (reply.media,) if isinstance(reply.media, str) else reply.media
        out["content"] = {m: {"schema": schema} for m in media}
    for header in reply.headers:
        if header not in components.HEADERS:
            raise BadOperation(f"no header component {header!r}")
    if reply.headers:
        out["headers"] = {h: ref(h, "headers") for h in reply.headers}
    return out


def _error_name(status: int) -> str:
    """``NotFound`` for 404: the status's first code in CamelCase (stable, unlike the
    reason phrases of ``http.HTTPStatus``, which change between Python versions)."""
    return "".join(word.capitalize() for word in kinds_of(status)[0].code.split("_"))


def _error_response(status: int) -> dict:
    kinds = kinds_of(status)
    headers = {h: components.ERROR_HEADERS[h] for kind in kinds for h in kind.headers}
    response: dict[str, Any] = {
        "description": "; ".join(f"`{kind.code}`: {kind.meaning}" for kind in kinds),
        "content": {
            JSON: {
                "schema": {
                    "allOf": [ref("Error")],
                    "properties": {
                        "error": {"properties": {"code": {"enum": [kind.code for kind in kinds]}}}
                    },
                }
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


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
        ret["pattern"] = ecma(ret["pattern"])
    return {}


def _component_refs(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: ``components.component(name)`` is a ``$ref`` to it."""
    name = field.metadata.get("component")
    if name is not None:
        ret.clear()
        ret["$ref"] = ref(name)["$ref"]
    return {}


@documented(
    summary="this document",
    tag="docs",
    replies={200: Reply("OpenAPI 3.1, the same in every mode", {"type": "object"})},
)
async def serve_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type=JSON)


def setup(app: web.Application) -> None:
    """Add ``/openapi.json`` and the console, and document every route added so far."""
    routing.add(app, "GET", "/openapi.json", serve_document)
    docs.setup_routes(app)
    routes = tuple(app.router.routes())
    # The document depends on the routes alone: apps with the same routes share its bytes.
    key = tuple((route.method, route.resource.canonical, unwrap(route.handler)) for route in routes)
    body = _built.get(key)
    if body is None:
        body = _built[key] = json.dumps(build_document(routes), separators=(",", ":")).encode()
    app[OPENAPI_JSON] = body


_built: dict[tuple, bytes] = {}
