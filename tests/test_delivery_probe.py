"""svc.broker.probe on its own: the rule every broker's receiving connection follows, with an
in-process transport that the test can make mute (the brokers' real connections:
test_broker_probe.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from svc.broker.probe import DeliveryProbe
from svc.storage import Unavailable
from svc.testing import wait_until


class Loopback:
    """Hands every token back at once, unless mute; counts re-opens."""

    def __init__(self):
        self.mute = False
        self.unsendable = False
        self.reopened = 0
        self.probe: DeliveryProbe | None = None

    async def send(self, token: str) -> None:
        if self.unsendable:
            raise ConnectionError("the server is down")
        if not self.mute:
            asyncio.get_running_loop().call_soon(self.probe.heard, token)

    def reopen(self) -> None:
        self.reopened += 1


def probe_on(loop: Loopback, every: float = 0.1) -> DeliveryProbe:
    loop.probe = DeliveryProbe("test: receiver", loop.send, loop.reopen, lambda: True, every)
    return loop.probe


async def test_a_mute_receiver_is_refused_at_start():
    loop = Loopback()
    loop.mute = True
    with pytest.raises(Unavailable, match="not delivering: no echo in 0.1 s"):
        await probe_on(loop).start()


async def test_one_line_per_episode_a_reopen_per_failed_proof_and_one_line_back(caplog):
    caplog.set_level(logging.INFO, logger="svc.broker.probe")
    loop = Loopback()
    probe = probe_on(loop)
    await probe.start()
    try:
        probe.check()  # delivering: no complaint
        loop.mute = True
        await wait_until(lambda: loop.reopened >= 3, timeout=5)
        with pytest.raises(Unavailable, match="not delivering"):
            probe.check()
        assert probe.stalls == 1
        loop.mute = False
        probe.kick()
        await wait_until(lambda: probe.problem is None, timeout=5)
        probe.check()
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            "test: receiver is not delivering: no echo in 0.1 s; re-opening it",
            "test: receiver delivers again",
        ]
    finally:
        await probe.stop()


async def test_a_token_that_cannot_be_sent_proves_nothing():
    loop = Loopback()
    probe = probe_on(loop)
    await probe.start()
    try:
        loop.unsendable = True
        await asyncio.sleep(0.5)  # several rounds, none of them a verdict
        assert loop.reopened == 0 and probe.problem is None
    finally:
        await probe.stop()


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
def test_probe_every_is_a_url_parameter_of_each_broker(scheme):
    from svc_postgres.url import PostgresURL
    from svc_redis.url import RedisURL

    parse = PostgresURL.parse if scheme == "postgresql" else RedisURL.parse
    assert parse(f"{scheme}://h/0").probe_every == 5.0  # the default
    assert parse(f"{scheme}://h/0?probe_every=0.5").probe_every == 0.5
    for bad in ("0", "nan", "61", "soon"):
        with pytest.raises(ValueError, match="probe_every"):
            parse(f"{scheme}://h/0?probe_every={bad}")


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
def test_a_bad_probe_every_stops_start_up_with_one_line_naming_broker_url(scheme):
    from svc.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"BROKER_URL": f"{scheme}://u:s3cret@h/0?probe_every=-1"})
    message = str(caught.value)
    assert message.startswith("BROKER_URL:") and "probe_every" in message
    assert "s3cret" not in message and "\n" not in message
