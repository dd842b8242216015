"""The shipped broker conformance suite on the Postgres broker, run as a third party would."""

import aiopg
import pytest

from svc.testing import BrokerConformance

pytestmark = pytest.mark.postgres


class TestPostgresBroker(BrokerConformance):
    @pytest.fixture
    def broker_url(self, postgres_url):
        return postgres_url

    @pytest.fixture
    async def crash(self, postgres_url):
        """Die as a killed process would: connections gone, no goodbye, and its last
        heartbeat long ago (so the test need not wait out NODE_TTL)."""

        async def crash(broker):
            async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
                # Its housekeeping must not beat again: stop everything but the goodbye.
                await cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (broker.node_id,),
                )
                broker._presence.goodbye = _no_goodbye  # the process is gone: no last word
                await broker.close()
                await cur.execute(
                    "UPDATE svc_nodes SET seen_at = now() - interval '1 hour' WHERE id = %s",
                    (broker.node_id,),
                )

        return crash

    @pytest.fixture
    def lose_history(self, postgres_url, make_broker):
        """What losing the two history tables does (a restore from a dump without them, an
        operator's TRUNCATE): the instances opened before keep running; the new one returned
        is opened on the emptied tables."""

        async def lose():
            async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
                await cur.execute("TRUNCATE svc_room_numbers, svc_room_events")
            return make_broker()

        return lose


async def _no_goodbye():
    return None
