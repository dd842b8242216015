"""``postgres://`` and ``postgresql://``: svc's users in PostgreSQL (aiopg).

Several svc processes on one database form one service: every committed
change is announced to all of them through ``LISTEN``/``NOTIFY``.
"""

from .storage import PostgresStorage

__all__ = ["PostgresStorage"]
