"""GET /docs: Swagger UI served offline: every script, style and icon from svc itself."""

from __future__ import annotations

import gzip
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svc.http.docs import ASSETS

EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>]""")


class Links(HTMLParser):
    """Every URL the page makes a browser load: scripts, styles, icons, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and not (tag == "a" and name == "href"):
                self.urls.append((tag, attrs[name]))


async def test_every_file_the_page_loads_is_served_by_svc(client):
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert not EXTERNAL.search(page)  # nothing from a CDN, nor any other host
    parser = Links()
    parser.feed(page)
    loaded = {tag: [] for tag in ("script", "link")}
    for tag, url in parser.urls:
        path = urljoin("/docs", url)
        assert path.startswith("/docs/"), url
        fetched = await client.get(path)
        assert fetched.status == 200, path
        assert fetched.content_type == ASSETS[path.rsplit("/", 1)[1]]
        assert await fetched.read()
        loaded[tag].append(path)
    assert loaded["script"] == ["/docs/swagger-ui-bundle.js", "/docs/console.js"]
    assert "/docs/swagger-ui.css" in loaded["link"]


async def test_the_console_reads_our_document_and_nothing_else(client):
    script = await (await client.get("/docs/console.js")).text()
    assert 'url: "openapi.json"' in script
    # Swagger UI's default validator badge is an image from validator.swagger.io.
    assert "validatorUrl: null" in script
    assert not EXTERNAL.search(script)
    bundle = await (await client.get("/docs/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle


async def test_the_big_files_travel_gzipped_when_the_client_takes_it(client):
    plain = await client.get("/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    body = await plain.read()
    packed = await client.get(
        "/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert packed.headers["Content-Encoding"] == "gzip"
    raw = await packed.read()
    assert len(raw) < len(body) / 2
    assert gzip.decompress(raw) == body


async def test_an_unknown_file_is_a_json_404(client):
    for path in ("/docs/nope.js", "/docs/..%2Fsetup.cfg", "/docs/swagger-ui.js.map"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=40))
async def test_any_asset_name_is_a_file_or_a_404(client, name):
    resp = await client.get("/docs/" + name.replace("%", "%25").replace("?", "%3F"))
    assert resp.status in (200, 404)
    if resp.status == 404:
        assert (await resp.json())["error"]["code"] == "not_found"
