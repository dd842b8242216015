"""svc.testing's broker conformance suite, run on the Redis broker (the real server)."""

from __future__ import annotations

import pytest

try:
    from svc.testing.broker import BrokerConformance
except ImportError:  # the suite lands with the Postgres broker's branch
    pytest.skip("svc.testing.BrokerConformance is not there yet", allow_module_level=True)

pytestmark = pytest.mark.redis


class TestRedisBrokerConformance(BrokerConformance):
    @pytest.fixture
    def broker_url(self, redis_url):
        # Short presence timings, so the expiry of a crashed instance is checked quickly.
        return redis_url + "&heartbeat=0.5&node_ttl=3"

    @pytest.fixture
    def lose_history(self, broker_url):
        """What a restart of Redis, empty, does to this test's keys (its own prefix: the
        shared server's other keys stay): every key gone.  The instances opened before keep
        running; the new one returned is opened on the emptied prefix."""
        import redis
        from svc_redis import RedisBroker
        from svc_redis.url import RedisURL

        async def lose():
            parsed = RedisURL.parse(broker_url)
            client = redis.Redis.from_url(broker_url.split("?")[0])
            try:
                for key in client.scan_iter(match=f"{parsed.prefix}:*", count=1000):
                    client.delete(key)
            finally:
                client.close()
            return RedisBroker(broker_url)

        return lose

    @pytest.fixture
    async def crash(self):
        async def crash(broker):
            await broker.abandon()

        return crash
