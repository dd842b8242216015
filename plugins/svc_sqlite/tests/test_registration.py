"""Registered as a third party's plugin is: by its own distribution's entry point."""

import subprocess
import sys

from svc_sqlite import SQLiteStorage

from svc.storage.registry import available, get_plugin, storage_plugins


def test_found_through_its_own_entry_point_not_as_a_builtin():
    assert "sqlite" not in storage_plugins.builtins()
    info = available()["sqlite"]
    assert (info.target, info.origin) == ("svc_sqlite:SQLiteStorage", "svc-sqlite")
    assert get_plugin("sqlite:////tmp/x.db") is SQLiteStorage
    assert get_plugin("SQLITE:////tmp/x.db") is SQLiteStorage


def test_svc_plugins_check_lists_it_as_ok():
    done = subprocess.run(
        [sys.executable, "-m", "svc", "plugins", "--check"], capture_output=True, text=True
    )
    line = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["sqlite"])
    assert line.split() == ["sqlite", "svc_sqlite:SQLiteStorage", "svc-sqlite", "ok"]
