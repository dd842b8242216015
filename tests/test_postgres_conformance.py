"""The shipped conformance suite on the Postgres backend, run as a third party would run it."""

import pytest

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance

pytestmark = pytest.mark.postgres


class TestPostgresStorage(StorageConformance):
    @pytest.fixture
    async def storage(self, postgres_url):
        backend = get_plugin(postgres_url)(postgres_url)
        await backend.open()
        yield backend
        await backend.close()
