"""``postgres://`` and ``postgresql://``: svc's users in PostgreSQL (aiopg), and the broker
that joins several svc processes on one database into one service (``LISTEN``/``NOTIFY``).
"""

from .broker import PostgresBroker
from .storage import PostgresStorage

__all__ = ["PostgresBroker", "PostgresStorage"]
