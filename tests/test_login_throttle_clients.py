"""The failed-login throttle slows the client that fails, never the owner logging in from
elsewhere (issue 24, finding 3); behind a trusted balancer the client is the one it reports.

Over real sockets: the attacker is 127.0.0.1, the owner 127.0.0.2 (a second loopback
source address), or, behind ``TRUSTED_PROXIES``, the address ``X-Forwarded-For`` names.
The throttle does not depend on the storage, so these run on memory only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging

import aiohttp
import pytest
from conftest import TEST_SETTINGS
from hypothesis import given
from hypothesis import strategies as st

from svc.app import create_app
from svc.http.client_address import (
    forwarded_for,
    forwarded_rfc7239,
    parse_address,
    parse_networks,
    resolve,
)
from svc.http.login_throttle import LoginThrottle, client_key
from svc.keys import LOGIN_THROTTLE
from svc.settings import Settings, SettingsError
from svc.testing import unique_id

SECRET = "s3cret-for-tests-" + "x" * 32
PASSWORD = "correct horse battery"


@pytest.fixture
def serve(aiohttp_client):
    """``await serve(throttle=..., **settings)``: auth on, memory storage, real sockets."""

    async def factory(throttle=None, **overrides):
        settings = dataclasses.replace(TEST_SETTINGS, jwt_secret_key=SECRET, **overrides)
        app = create_app(settings)
        if throttle is not None:
            app[LOGIN_THROTTLE] = throttle
        return await aiohttp_client(app)

    return factory


async def new_user(client) -> str:
    username = unique_id()
    resp = await client.post("/users", json={"username": username, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    return username


def login_body(username: str, password: str = PASSWORD) -> dict:
    return {"username": username, "password": password}


async def flood(client, username: str, count: int = 34, headers=None) -> list[int]:
    """``count`` wrong passwords for ``username`` at once (429s are answered after a
    pause, so one after the other would be slow); their statuses."""

    async def guess(i: int) -> int:
        each = headers(i) if callable(headers) else headers
        resp = await client.post(
            "/auth/token", json=login_body(username, f"guess {i}"), headers=each
        )
        return resp.status

    return await asyncio.gather(*(guess(i) for i in range(count)))


async def logins_from(address: str, client, username: str, tries: int = 15) -> list[int]:
    """The owner's ``tries`` logins with the right password, from source ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        statuses = []
        for _ in range(tries):
            async with session.post(
                client.make_url("/auth/token"), json=login_body(username)
            ) as resp:
                statuses.append(resp.status)
        return statuses


async def test_an_attackers_wrong_passwords_do_not_lock_the_owner_out(serve):
    client = await serve()  # the default throttle
    username = await new_user(client)
    statuses = await flood(client, username)  # from 127.0.0.1
    assert statuses.count(429) >= 25, statuses  # the attacker is slowed...
    assert await logins_from("127.0.0.2", client, username) == [200] * 15  # ...not the owner
    # The attacker's own address stays shut for this account, even with the right password.
    resp = await client.post("/auth/token", json=login_body(username))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled(serve):
    client = await serve(
        throttle=LoginThrottle(first_delay=30), trusted_proxies=parse_networks("127.0.0.1")
    )
    username = await new_user(client)
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    # What the attacker writes left of the balancer's own entry is its own text: ignored.
    statuses = await flood(
        client, username, headers=lambda i: {"X-Forwarded-For": f"10.9.{i}.1, 203.0.113.9"}
    )
    assert statuses.count(429) >= 25, statuses
    resp = await client.post("/auth/token", json=login_body(username), headers=attacker)
    assert resp.status == 429
    for owner in ({"X-Forwarded-For": "198.51.100.7"}, {"Forwarded": 'for="198.51.100.8:4711"'}):
        for _ in range(5):
            resp = await client.post("/auth/token", json=login_body(username), headers=owner)
            assert resp.status == 200, (owner, await resp.text())


async def test_many_clients_guessing_one_account_get_one_guess_each_never_the_owner(serve):
    """Past attack_threshold failures at one account from anyone, each client's free
    guesses at it drop to one; the owner, who has not failed, logs in at once."""
    throttle = LoginThrottle(first_delay=30, attack_threshold=6)
    client = await serve(throttle=throttle, trusted_proxies=parse_networks("127.0.0.1"))
    username = await new_user(client)

    async def attempt(address: str, password: str = "guess") -> int:
        resp = await client.post(
            "/auth/token",
            json=login_body(username, password),
            headers={"X-Forwarded-For": address},
        )
        return resp.status

    for i in range(3):  # three addresses, two failures each: within their own budgets
        assert [await attempt(f"203.0.113.{i}") for _ in range(2)] == [401, 401]
    # Under attack now: a new address gets one guess, then waits.
    assert [await attempt("203.0.113.50") for _ in range(2)] == [401, 429]
    assert await attempt("198.51.100.7", PASSWORD) == 200  # the owner, from elsewhere
    # Below the threshold (another account), a new address still has its five.
    other = await new_user(client)
    resp = [
        await client.post(
            "/auth/token",
            json=login_body(other, "guess"),
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
        for _ in range(2)
    ]
    assert [r.status for r in resp] == [401, 401]


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["no_proxies", "other_proxies"])
async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(serve, trusted):
    """A guesser that makes up a new X-Forwarded-For (or Forwarded) each time is still the
    one client it is: its address, 127.0.0.1, is not a trusted proxy."""
    client = await serve(
        throttle=LoginThrottle(first_delay=30), trusted_proxies=parse_networks(trusted)
    )
    username = await new_user(client)

    def forged(i: int) -> dict:
        return {"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"}

    statuses = await flood(client, username, headers=forged)
    assert statuses.count(429) >= 25, statuses
    resp = await client.post("/auth/token", json=login_body(username), headers=forged(99))
    assert resp.status == 429
    assert await logins_from("127.0.0.2", client, username, tries=3) == [200] * 3


async def test_one_client_spraying_usernames_is_slowed_and_counted(serve):
    client = await serve(throttle=LoginThrottle(free=5, client_free=8, first_delay=30))
    owner = await new_user(client)
    for _ in range(8):  # one failure at each of 8 usernames: no pair budget is spent
        resp = await client.post("/auth/token", json=login_body(unique_id(), "guess"))
        assert resp.status == 401
    resp = await client.post("/auth/token", json=login_body(unique_id(), "guess"))
    assert resp.status == 429  # the client's own budget
    # A success does not give the sprayer its budget back...
    assert (await client.post("/auth/token", json=login_body(owner))).status == 429
    # ...and the owner from elsewhere is not slowed.
    assert await logins_from("127.0.0.2", client, owner, tries=2) == [200] * 2
    metrics = await (await client.get("/metrics")).text()
    assert 'svc_logins_throttled_total{budget="client"} 2.0' in metrics, metrics
    assert 'svc_logins_throttled_total{budget="client_username"} 0.0' in metrics


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"], ids=["untrusted", "trusted"])
async def test_forwarding_headers_ignored_are_said_once(serve, caplog, trusted):
    """Behind a balancer the operator did not name, every client is one: the log says so,
    once, and never when the peer is a trusted proxy."""
    caplog.set_level(logging.WARNING, logger="svc.http.auth")
    client = await serve(trusted_proxies=parse_networks(trusted))
    for i in range(3):
        resp = await client.post(
            "/auth/token",
            json=login_body(unique_id(), "guess"),
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        assert resp.status == 401
    said = [r.getMessage() for r in caplog.records if "TRUSTED_PROXIES" in r.getMessage()]
    assert len(said) == (1 if not trusted else 0), said
    if said:
        assert "127.0.0.1" in said[0] and "198.51.100" not in said[0]


def test_an_ipv6_client_counts_by_its_64():
    """One host holds a whole /64: 2**64 addresses must not be 2**64 budgets."""
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("203.0.113.9") == "203.0.113.9"


def test_trusted_proxies_setting():
    env = {"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,"}
    proxies = Settings.from_env(env).trusted_proxies
    assert [str(p) for p in proxies] == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"TRUSTED_PROXIES": "10.0.0.0/8, balancer.internal"})
    assert caught.value.variable == "TRUSTED_PROXIES"
    assert "balancer.internal" in str(caught.value)


@pytest.mark.parametrize(
    ("peer", "hops", "client"),
    [
        ("203.0.113.9", ["1.1.1.1"], "203.0.113.9"),  # untrusted peer: headers ignored
        ("10.0.0.2", ["1.1.1.1", "198.51.100.7"], "198.51.100.7"),  # rightmost untrusted
        ("10.0.0.2", ["198.51.100.7", "10.0.0.3"], "198.51.100.7"),  # through two proxies
        ("10.0.0.2", ["10.0.0.4", "10.0.0.3"], "10.0.0.4"),  # every hop trusted: leftmost
        ("10.0.0.2", ["1.1.1.1", "garbage"], "10.0.0.2"),  # unreadable: the last trusted hop
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ['"[2001:db8::1]:80"'], "2001:db8::1"),
        ("10.0.0.2", ["::ffff:198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["198.51.100.7:4711"], "198.51.100.7"),
    ],
)
def test_the_walk(peer, hops, client):
    assert resolve(peer, hops, parse_networks("10.0.0.0/8")) == client


def test_forwarded_header_parsing():
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'
    assert forwarded_rfc7239([value]) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"']
    assert forwarded_rfc7239(["proto=https", 'for="a,b";x=1']) == ["", '"a,b"']
    assert forwarded_for(["1.1.1.1, 2.2.2.2", "3.3.3.3"]) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]


_TRUSTED = parse_networks("10.0.0.0/8, fd00::/8")
_header_text = st.text(st.characters(codec="latin-1"), max_size=80)


@given(peer=st.ip_addresses(), values=st.lists(_header_text, max_size=4), rfc=st.booleans())
def test_any_header_text_yields_an_address_it_was_given(peer, values, rfc):
    """Header text is from outside: parsing never raises, and the client is the peer or an
    address written in the header, never anything made up."""
    hops = forwarded_rfc7239(values) if rfc else forwarded_for(values)
    client = resolve(str(peer), hops, _TRUSTED)
    given_addresses = {str(parse_address(hop)) for hop in hops} | {str(parse_address(str(peer)))}
    assert client in given_addresses
    ipaddress.ip_address(client)
    if not any(peer in net for net in _TRUSTED if peer.version == net.version):
        assert client == str(parse_address(str(peer)))  # an untrusted peer's headers: ignored


@given(forged=st.lists(_header_text, max_size=4), real=st.ip_addresses())
def test_what_a_client_writes_left_of_the_balancer_changes_nothing(forged, real):
    """The balancer appends the address it saw; whatever the client sent before it is
    ignored when that address is not a trusted proxy."""
    if any(real in net for net in _TRUSTED if real.version == net.version):
        return
    hops = forwarded_for([*forged, str(real)])
    assert resolve("10.0.0.2", hops, _TRUSTED) == str(parse_address(str(real)))
