"""GET /demo and /static/{name} over real HTTP: the files, their types, caching, and 404s.

Nothing here touches storage, so it runs on the memory backend only.
"""

from __future__ import annotations

import configparser
import dataclasses
import fnmatch
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import TEST_SETTINGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svc.app import create_app
from svc.http.demo import STATIC_TYPES

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "svc" / "static"


@pytest.fixture
def make_client(aiohttp_client):
    async def factory(**overrides):
        return await aiohttp_client(create_app(dataclasses.replace(TEST_SETTINGS, **overrides)))

    return factory


@pytest.fixture
async def client(make_client):
    return await make_client()


async def test_the_page_is_html_with_auth_off(client):
    response = await client.get("/demo")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    text = await response.text()
    assert 'data-auth="off"' in text
    assert '<script type="module" src="static/demo.js">' in text  # relative: a prefix works
    csp = response.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp


async def test_the_page_says_auth_is_on_when_it_is(make_client):
    client = await make_client(jwt_secret_key="k" * 32)
    text = await (await client.get("/demo")).text()
    assert 'data-auth="on"' in text
    assert 'data-auth="off"' not in text


async def test_every_static_file_is_served_with_its_type(client):
    names = [p.name for p in STATIC.iterdir() if p.suffix in STATIC_TYPES]
    assert {"svc-client.js", "demo.js", "demo.css"} <= set(names)
    for name in names:
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name
        assert response.content_type == STATIC_TYPES[Path(name).suffix]
        assert await response.read() == (STATIC / name).read_bytes()
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_an_unchanged_file_is_304(client):
    first = await client.get("/static/svc-client.js")
    etag = first.headers["ETag"]
    again = await client.get("/static/svc-client.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    other = await client.get("/static/svc-client.js", headers={"If-None-Match": '"nope"'})
    assert other.status == 200
    page_etag = (await client.get("/demo")).headers["ETag"]
    assert (await client.get("/demo", headers={"If-None-Match": page_etag})).status == 304


async def test_names_outside_the_table_are_json_404s(client):
    for path in (
        "/static/demo.html",  # the page lives at /demo only
        "/static/nope.js",
        "/static/..%2Fapp.py",
        "/static/../app.py",
        "/static/%2e%2e/svc/app.py",
        "/static/",
        "/static/__init__.py",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        body = await response.json()
        assert body["error"]["code"] == "not_found", path


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=80))
async def test_any_name_is_a_file_or_a_json_404(client, name):
    response = await client.get("/static/" + quote(name, safe=""))
    if name in {p.name for p in STATIC.iterdir() if p.suffix in STATIC_TYPES}:
        assert response.status == 200
    else:
        assert response.status == 404, (name, response.status)
        assert (await response.json())["error"]["code"] == "not_found"


def test_package_data_covers_every_file_of_the_static_folder():
    """A non-editable install ships only what setup.cfg names: every file must be named."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["svc"].split(",")]
    for path in STATIC.iterdir():
        relative = f"static/{path.name}"
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
