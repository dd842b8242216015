"""svc's storage conformance suite on this plugin: the run a plugin author makes, with every
optional fixture (each one left out skips the tests that need it, saying why)."""

import sqlite3

import pytest
import svc_sqlite.storage

from svc.storage.registry import get_plugin
from svc.testing import StorageConformance, reopener


def backend_for(url: str):
    # Found the way svc finds it: by the scheme, through the entry point.
    return get_plugin(url)(url)


class TestSQLiteStorage(StorageConformance):
    @pytest.fixture
    def url(self, tmp_path):
        return f"sqlite:///{tmp_path}/svc.db"  # tmp_path is absolute: four slashes

    @pytest.fixture
    async def storage(self, url):
        backend = backend_for(url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    async def reopen(self, url):  # the file is kept across close() and open()
        async with reopener(lambda: backend_for(url)) as reopen:
            yield reopen

    @pytest.fixture
    async def second_storage(self, url):  # as a second svc process on the same file
        backend = backend_for(url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    def bad_urls(self):
        return ["sqlite://", "sqlite://host/svc.db", "sqlite:///svc.db?mode=ro", "mysql://h/db"]

    @pytest.fixture
    def garbage_storage(self, tmp_path):  # a file that is not a SQLite database
        (tmp_path / "notes.db").write_text("not a database, and long enough to be read as one" * 20)
        return backend_for(f"sqlite:///{tmp_path}/notes.db")

    @pytest.fixture
    def unavailable_storage(self, tmp_path, monkeypatch):
        """A file another process holds locked: "not yet" (svc retries)."""
        monkeypatch.setattr(svc_sqlite.storage, "BUSY_TIMEOUT", 0.1)
        holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        yield backend_for(f"sqlite:///{tmp_path}/busy.db")
        holder.execute("ROLLBACK")
        holder.close()
