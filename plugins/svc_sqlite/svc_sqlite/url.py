"""``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` → a file path.

The rule of SQLAlchemy's SQLite URLs: what follows ``sqlite:///`` is the path, so a
fourth slash makes it absolute.  Relative paths are resolved once, against the working
directory svc starts in.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

EXAMPLES = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


def database_path(url: str) -> str:
    """The absolute path of the database file ``url`` names; ValueError (for a person) if none."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or not url[len(parts.scheme) :].startswith(":///"):
        raise ValueError(f"a SQLite URL has three slashes and no host: {EXAMPLES}")
    if parts.query or parts.fragment:
        raise ValueError(f"a SQLite URL takes no options (nothing after ? or #): {EXAMPLES}")
    path = unquote(parts.path[1:])  # drop the slash that ends the (empty) host
    if not path or path.endswith("/") or path in (".", ".."):
        raise ValueError(f"a SQLite URL names a file: {EXAMPLES}")
    if "\x00" in path:
        raise ValueError("a SQLite URL's path cannot hold a NUL character")
    if path == ":memory:":
        raise ValueError("for a database that is not kept, use DATABASE_URL=memory://")
    return os.path.abspath(path)
