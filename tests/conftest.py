"""Shared fixtures: the app on each storage backend, driven through real HTTP.

``storage_url`` is parametrised over the backends, so a test that uses
``client`` (or ``make_client``) runs once per backend and must see the same
responses on each.
"""

from __future__ import annotations

import dataclasses
import os

import psycopg2
import pytest

from svc.app import create_app
from svc.settings import Settings

# Low bcrypt cost keeps the suite fast; the cost itself is tested in test_passwords.
TEST_SETTINGS = Settings(bcrypt_rounds=4, database_timeout=5)


POSTGRES_URL = os.environ.get("SVC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database's URL; skips when it does not answer, except in CI where that fails."""
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        problem = f"PostgreSQL at SVC_TEST_POSTGRES_URL does not answer: {str(exc).strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return POSTGRES_URL


REDIS_URL = os.environ.get("SVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The test Redis's URL; skips when it does not answer, except in CI where that fails."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        problem = f"Redis at SVC_TEST_REDIS_URL does not answer: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return REDIS_URL


@pytest.fixture
def redis_url(redis_server_url) -> str:
    """A Redis broker URL with a key prefix of its own: parallel runs never share a key."""
    from svc.testing import unique_id

    separator = "&" if "?" in redis_server_url else "?"
    return f"{redis_server_url}{separator}prefix={unique_id('test-')}"


@pytest.fixture
async def postgres_storage(postgres_url):
    """An opened PostgresStorage on the test database."""
    from svc_postgres import PostgresStorage

    backend = PostgresStorage(postgres_url)
    await backend.open()
    yield backend
    await backend.close()


#: Another storage plugin to run every backend-parametrised test on too, its URL with
#: ``{tmp_path}`` for a fresh folder per test: a plugin author runs svc's own HTTP and
#: WebSocket suites against their backend with
#: ``SVC_TEST_EXTRA_STORAGE_URL='sqlite:///{tmp_path}/svc.db' pytest -k extra``.
EXTRA_STORAGE_URL = os.environ.get("SVC_TEST_EXTRA_STORAGE_URL", "").strip()


@pytest.fixture(
    params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
    + (["extra"] if EXTRA_STORAGE_URL else [])
)
def storage_url(request) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    if request.param == "extra":
        return EXTRA_STORAGE_URL.format(tmp_path=request.getfixturevalue("tmp_path"))
    return "memory://"


@pytest.fixture
def settings(storage_url) -> Settings:
    return dataclasses.replace(TEST_SETTINGS, database_url=storage_url)


@pytest.fixture
def make_client(aiohttp_client, settings):
    """``await make_client(**overrides)``: a test client on a fresh app."""

    async def factory(**overrides):
        return await aiohttp_client(create_app(dataclasses.replace(settings, **overrides)))

    return factory


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
async def two(aiohttp_client, settings, storage_url):
    """Two clients, each on its own app, sharing storage and broker, as two processes would.

    Memory: one storage instance and a ``memory://NAME`` bus shared by both apps.
    Postgres: two complete apps on the test database (each its own pool and broker).
    """
    from svc_memory import MemoryStorage

    from svc.testing import unique_id

    if settings.resolved_broker_url == "memory://":
        # An in-process default broker is private to its app: share a named bus instead,
        # as processes would share a real broker (memory storage, SQLite, a third party's).
        settings = dataclasses.replace(settings, broker_url=f"memory://{unique_id('bus')}")
    if storage_url.startswith("memory"):
        shared = MemoryStorage()  # memory://, unlike a file or a server, is one per instance
        apps = [create_app(settings, storage=shared) for _ in range(2)]
    else:
        apps = [create_app(settings) for _ in range(2)]
    return [await aiohttp_client(app) for app in apps]
