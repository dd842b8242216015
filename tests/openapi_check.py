"""Holding real answers and frames to the OpenAPI document the server serves (jsonschema)."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_BASE = "urn:svc:openapi"


class Document:
    """The served document, with a validator for any of its schemas."""

    def __init__(self, document: dict):
        self.raw = document
        resource = Resource(contents=document, specification=DRAFT202012)
        self._registry = Registry().with_resource(_BASE, resource)

    @classmethod
    async def of(cls, client) -> Document:
        resp = await client.get("/openapi.json")
        assert resp.status == 200
        return cls(json.loads(await resp.read()))

    def errors(self, instance, pointer: str) -> list[str]:
        """What is wrong with ``instance`` against the schema at ``#pointer`` ([] when valid)."""
        validator = Draft202012Validator(
            {"$ref": f"{_BASE}#{pointer}"},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def assert_schema(self, instance, name: str) -> None:
        problems = self.errors(instance, f"/components/schemas/{name}")
        assert not problems, (name, instance, problems)

    def response(self, method: str, path: str, status: int) -> tuple[str, dict]:
        """The documented response (resolved) and its JSON Pointer in the document."""
        responses = self.raw["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
        pointer = f"/paths/{_escape(path)}/{method}/responses/{status}"
        response = responses[str(status)]
        if "$ref" in response:
            pointer = response["$ref"][1:]
            response = self.raw["components"]["responses"][pointer.rsplit("/", 1)[1]]
        return pointer, response

    async def check(self, method: str, path: str, resp) -> dict | None:
        """Assert that a real answer is one the document describes for ``method path``:
        its status is listed, its required headers are there, its body fits the schema.
        Returns the JSON body (None when there is none)."""
        pointer, response = self.response(method, path, resp.status)
        for name, header in response.get("headers", {}).items():
            if "$ref" in header:
                header = self.raw["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
            if header.get("required"):
                assert name in resp.headers, (method, path, resp.status, name)
        raw = await resp.read()
        content = response.get("content")
        if not content:
            assert raw == b"", (method, path, resp.status, raw)
            return None
        assert resp.content_type in content, (method, path, resp.content_type, list(content))
        if resp.content_type != "application/json":
            return None
        body = json.loads(raw)
        problems = self.errors(body, f"{pointer}/content/{_escape(resp.content_type)}/schema")
        assert not problems, (method, path, resp.status, body, problems)
        return body


def _escape(token: str) -> str:
    """A JSON Pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")
