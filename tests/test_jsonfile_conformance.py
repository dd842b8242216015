"""The conformance suite on the example JSON-file backend, set up as a plugin author would.

The mutants of tests/test_conformance_catches.py reuse this class with a broken backend.
"""

import pytest
from conformance_examples.jsonfile import JsonFileStorage

from svc.testing import StorageConformance, reopener


class TestJsonFileStorage(StorageConformance):
    #: The class under test (the mutation test swaps in broken copies).
    backend = JsonFileStorage

    @pytest.fixture
    def url(self, tmp_path):
        return f"jsonfile://{tmp_path}/users.json"

    @pytest.fixture
    async def storage(self, url):
        backend = self.backend(url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    async def reopen(self, url):
        async with reopener(lambda: self.backend(url)) as reopen:
            yield reopen

    @pytest.fixture
    def bad_urls(self):
        return [
            "jsonfile://",
            "jsonfile://host/users.json",
            "jsonfile:///relative-looking/users.txt",
            "jsonfile:///data/users.json?mode=fast",
            "sqlite:///data/users.json",
        ]

    @pytest.fixture
    def unavailable_storage(self, tmp_path):
        return self.backend(f"jsonfile://{tmp_path}/not-mounted-yet/users.json")
