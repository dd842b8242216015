"""The shipped broker conformance suite on the memory broker, run as a third party would.

``memory://NAME`` is an in-process bus shared by name: two instances on it
see each other as two processes sharing a real broker would.
"""

from urllib.parse import urlsplit

import pytest

from svc.broker.memory import MemoryBroker, _named_buses
from svc.testing import BrokerConformance, unique_id


class TestMemoryBroker(BrokerConformance):
    @pytest.fixture
    def broker_url(self):
        return f"memory://{unique_id('bus')}"

    @pytest.fixture
    def lose_history(self, broker_url):
        """A bus lives while an instance is open on it: once every one has closed, the next
        starts empty, as a process starting again would."""

        async def lose() -> MemoryBroker:
            for bus_member in list(_named_buses[urlsplit(broker_url).netloc].members):
                await bus_member.close()
            return MemoryBroker(broker_url)

        return lose
