"""``@documented(...)``: each handler carries its OpenAPI operation next to its code.

The decorator only attaches an :class:`Operation` to the handler; ``openapi.py``
walks the router, reads it from every route, and refuses to build the document
(so the app does not start) when a route has none.  What an operation may name
is checked there too: its error statuses must be in the error catalogue
(``errors.CATALOGUE``), its schemas, parameters and headers must be components
(``components.py``), its body a marshmallow schema (the one that validates it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from marshmallow import Schema

JSON = "application/json"
_ATTRIBUTE = "__openapi_operation__"

Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class Reply:
    """A success answer: what it means, and what it carries."""

    description: str
    #: A schema component's name (``components.SCHEMAS``), or an inline JSON Schema.
    schema: str | dict | None = None
    #: Header components that come with it (``components.HEADERS``).
    headers: tuple[str, ...] = ()
    media: str | tuple[str, ...] = JSON


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    #: Error statuses it can answer; each is described from the error catalogue.
    errors: tuple[int, ...] = ()
    description: str = ""
    #: The marshmallow schema that validates the JSON body (read by apispec).
    body: type[Schema] | None = None
    body_description: str = ""
    #: Parameter components by name (``components.PARAMETERS``), or whole parameter objects.
    parameters: tuple[str | dict, ...] = ()
    #: A write to the user in the path: with auth on it needs that user's bearer token.
    owner_only: bool = False


def documented(**fields: Any) -> Callable[[Handler], Handler]:
    """Attach ``Operation(**fields)`` (its fields, by keyword) to the handler; the
    handler itself is returned unchanged.  A misspelt field is a TypeError at import."""
    operation = Operation(**fields)

    def attach(handler: Handler) -> Handler:
        setattr(handler, _ATTRIBUTE, operation)
        return handler

    return attach


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, _ATTRIBUTE, None)
