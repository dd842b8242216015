"""The shipped conformance suite on the memory backend, run as a third party would run it."""

import pytest

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    async def storage(self):
        backend = get_plugin("memory://")("memory://")
        await backend.open()
        yield backend
        await backend.close()
