"""``redis://`` and ``rediss://``: the Redis broker (changes, room messages, presence).

Several svc processes on one Redis (and one storage) form one service without
putting NOTIFY on the database's write path.  See ``docs/brokers-redis.md``.
"""

from .broker import RedisBroker

__all__ = ["RedisBroker"]
