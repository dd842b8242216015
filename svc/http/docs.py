"""``GET /docs``: the OpenAPI document as one plain HTML page, rendered once at start.

No JavaScript and nothing from a CDN, so it works on a machine without
internet access; a browser and the document are all it needs.  Swagger UI
would add megabytes of vendored assets to show the same few routes.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put{color:#b70}.delete{color:#c22}
code,pre{background:#f5f5f5;border-radius:4px}pre{padding:.5rem;overflow:auto;font-size:13px}
table{border-collapse:collapse}
td,th{text-align:left;padding:.15rem .6rem .15rem 0;vertical-align:top}
"""


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(info['title'])} API</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} {escape(info['version'])}</h1>",
        _text(info.get("description", "")),
        "<p>The machine-readable document: <a href=/openapi.json>/openapi.json</a>.</p>",
        "<h2>Operations</h2>",
    ]
    components = document.get("components", {})
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            parts.append(_operation(method, path, op, components))
    parts.append("<h2>Schemas</h2>")
    for name, schema in components.get("schemas", {}).items():
        parts.append(f"<h3 id=schema-{escape(name)}>{escape(name)}</h3>")
        parts.append(f"<pre>{escape(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(method: str, path: str, op: dict, components: dict) -> str:
    out = [
        f"<div class=op><h3><span class='m {method}'>{method}</span> <code>{escape(path)}</code>"
        f" — {escape(op.get('summary', ''))}</h3>",
        _text(op.get("description", "")),
    ]
    if op.get("security"):
        out.append("<p><b>Needs</b> <code>Authorization: Bearer &lt;token&gt;</code>.</p>")
    params = [_resolve(p, components) for p in op.get("parameters", [])]
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>rule</th></tr>")
        for p in params:
            rule = escape(json.dumps(p.get("schema", {})))
            out.append(
                f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                f"<td><code>{rule}</code> {_text(p.get('description', ''), 'span')}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append(f"<p><b>Body</b> (JSON): {_schema_link(body['content'])}</p>")
    out.append("<table><tr><th>status</th><th>response</th></tr>")
    for status, response in op.get("responses", {}).items():
        response = _resolve(response, components)
        link = _schema_link(response.get("content", {}))
        out.append(
            f"<tr><td>{escape(status)}</td><td>{_text(response['description'], 'span')} "
            f"{link}</td></tr>"
        )
    out.append("</table></div>")
    return "\n".join(out)


def _resolve(item: dict, components: dict) -> dict:
    ref = item.get("$ref")
    if not ref:
        return item
    _, _, kind, name = ref.split("/")
    return components[kind][name]


def _schema_link(content: dict) -> str:
    for media in content.values():
        ref = media.get("schema", {}).get("$ref")
        if ref:
            name = escape(ref.rsplit("/", 1)[1])
            return f"<a href=#schema-{name}>{name}</a>"
    return ""


def _text(text: str, tag: str = "p") -> str:
    """Escaped text; `backticks` become <code>."""
    if not text:
        return ""
    pieces = escape(text).split("`")
    html = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    return f"<{tag}>{html}</{tag}>"
