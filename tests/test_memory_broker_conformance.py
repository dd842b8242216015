"""The shipped broker conformance suite on the memory broker, run as a third party would.

``memory://NAME`` is an in-process bus shared by name: two instances on it
see each other as two processes sharing a real broker would.
"""

import pytest

from svc.testing import BrokerConformance, unique_id


class TestMemoryBroker(BrokerConformance):
    @pytest.fixture
    def broker_url(self):
        return f"memory://{unique_id('bus')}"
