"""The conformance suite on the example JSON-file backend, set up as a plugin author would.

The mutants of tests/test_conformance_catches.py reuse this class with a broken backend.
"""

import pytest
from conformance_examples.jsonfile import JsonFileStorage

from svc.storage import Misconfigured
from svc.testing import StorageConformance, reopener


class TestJsonFileStorage(StorageConformance):
    #: The class under test (the mutation test swaps in broken copies).
    backend = JsonFileStorage

    @pytest.fixture
    def url(self, tmp_path):
        return f"jsonfile:///{tmp_path}/users.json"  # tmp_path is absolute: four slashes

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
            "jsonfile:///users.txt",
            "jsonfile:///data/users.json?mode=fast",
            "sqlite:///data/users.json",
        ]

    @pytest.fixture
    async def second_storage(self, url):
        backend = self.backend(url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    def garbage_storage(self, tmp_path):
        (tmp_path / "garbage.json").write_text("not JSON: the remains of another program")
        return self.backend(f"jsonfile:///{tmp_path}/garbage.json")

    # No `unavailable_storage`: nothing a file does is "not yet" (a missing folder is
    # Misconfigured, as svc_sqlite's is: the test at the end of this file).


async def test_a_missing_folder_is_misconfigured_not_unavailable(tmp_path):
    """The same decision as svc_sqlite's (docs/plugins.md): svc makes no folder, and does
    not wait for one."""
    backend = JsonFileStorage(f"jsonfile:///{tmp_path}/no/such/folder/users.json")
    with pytest.raises(Misconfigured, match="folder .* does not exist"):
        await backend.open()
    await backend.close()
