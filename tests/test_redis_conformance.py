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
    async def crash(self):
        async def crash(broker):
            await broker.abandon()

        return crash
