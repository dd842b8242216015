"""``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``: svc's users in one
SQLite file, through aiosqlite.  Durable storage on one machine with no server to run.

A third-party-style plugin: its own distribution, registered in the ``svc.storage``
entry-point group by its ``pyproject.toml``.  The broker stays svc's in-process default,
so one svc process serves one file (see ``docs/plugins.md``).
"""

from .storage import SQLiteStorage

__all__ = ["SQLiteStorage"]
