"""The shipped conformance suite on the Postgres backend, run as a third party would run it."""

import pytest

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance, reopener

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
