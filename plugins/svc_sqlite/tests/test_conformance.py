"""svc's storage conformance suite on this plugin: the run a plugin author makes."""

import pytest

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance


class TestSQLiteStorage(StorageConformance):
    @pytest.fixture
    async def storage(self, tmp_path):
        url = f"sqlite:///{tmp_path}/svc.db"  # tmp_path is absolute: four slashes
        # Found the way svc finds it: by the scheme, through the entry point.
        backend = get_plugin(url)(url)
        await backend.open()
        yield backend
        await backend.close()
