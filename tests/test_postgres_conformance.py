"""The shipped conformance suite on the Postgres backend, run as a third party would run it."""

from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance, reopener, unique_id

pytestmark = pytest.mark.postgres

SECRET = "hunter2-Sekr3t"


class TestPostgresStorage(StorageConformance):
    @pytest.fixture
    async def storage(self, postgres_url):
        backend = get_plugin(postgres_url)(postgres_url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    async def reopen(self, postgres_url):
        async with reopener(lambda: get_plugin(postgres_url)(postgres_url)) as reopen:
            yield reopen

    @pytest.fixture
    def bad_urls(self):
        return [
            f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/test",
            f"postgresql://postgres:{SECRET}@127.0.0.1:70000/test",
            f"postgres://postgres:{SECRET}@h/test?pool_size=0",
            f"postgres://postgres:{SECRET}@h/test?no_such_option=1",
            "mysql://h/test",
        ]

    @pytest.fixture
    def unavailable_storage(self):
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"  # nothing listens on port 1
        return get_plugin(url)(url)

    @pytest.fixture
    async def second_storage(self, postgres_url):
        backend = get_plugin(postgres_url)(postgres_url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    def garbage_storage(self, postgres_url):
        """A database of its own holding another program's `users` table."""
        database = unique_id("svc_garbage_").lower()
        admin = psycopg2.connect(postgres_url)
        admin.autocommit = True
        try:
            admin.cursor().execute(f"CREATE DATABASE {database}")
            url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{database}"))
            with psycopg2.connect(url) as conn:
                conn.cursor().execute("CREATE TABLE users (name text, born date)")
            conn.close()
            yield get_plugin(url)(url)
        finally:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.close()
