"""The Redis broker against the real Redis server, through the Broker interface only.

(``svc.testing.BrokerConformance``, once merged, runs its own suite on it too:
test_redis_conformance.py.)  Outages use a redis-server of the test's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_helpers import OwnRedis
from svc_redis import RedisBroker

from svc.broker import Change, PresenceChange, RoomMessage
from svc.broker.registry import get_plugin
from svc.keys import HUB
from svc.settings import Settings, SettingsError
from svc.storage import PROFILE_FIELDS, Unavailable, User
from svc.testing import unique_id, wait_until

pytestmark = pytest.mark.redis


class Recorder:
    """A BrokerListener that keeps what it was told, in order."""

    def __init__(self):
        self.changes: list[Change] = []
        self.messages: list[RoomMessage] = []
        self.presence: list[PresenceChange] = []
        self.gaps = 0

    def on_change(self, change):
        self.changes.append(change)

    def on_message(self, message):
        self.messages.append(message)

    def on_presence(self, change):
        self.presence.append(change)

    def on_gap(self):
        self.gaps += 1


@pytest.fixture
async def open_brokers(redis_url):
    """``await open_brokers(n, url=...)``: n opened instances sharing one prefix, closed after."""
    opened: list[RedisBroker] = []

    async def factory(count: int = 2, url: str | None = None, query: str = ""):
        made = []
        for _ in range(count):
            broker = RedisBroker((url or redis_url) + query)
            listener = Recorder()
            await broker.open(listener)
            opened.append(broker)
            made.append((broker, listener))
        return made

    yield factory
    for broker in opened:
        await broker.close()


def _user(user_id: str, version: int) -> User:
    from datetime import datetime, timezone

    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    profile = dict.fromkeys(PROFILE_FIELDS)
    profile.update(display_name="Zoë ✓", username=user_id, avatar_urls={"64": "https://x/a.png"})
    return User(user_id, profile, version, now, now)


# -- URLs ----------------------------------------------------------------------


def test_the_registry_serves_redis_and_rediss():
    assert get_plugin("redis://localhost/0") is RedisBroker
    assert get_plugin("rediss://localhost/0") is RedisBroker


@pytest.mark.parametrize(
    "url, problem",
    [
        ("redis://h:0/0", "port"),
        ("redis://h/abc", "database number"),
        ("redis://h/0?prefix=", "prefix"),
        ("redis://h/0?prefix=a%20b", "prefix"),
        ("redis://h/0?heartbeat=0", "heartbeat"),
        ("redis://h/0?heartbeat=nan", "heartbeat"),
        ("redis://h/0?node_ttl=25&heartbeat=6", "at most 30"),
        ("redis://h/0?node_ttl=3&heartbeat=2", "twice heartbeat"),
        ("redis://h/0?timeout=-1", "timeout"),
        ("redis://h/0?colour=blue", "unknown parameter 'colour'"),
        ("redis://h/0?ssl_ca_certs=/x", "rediss://"),
    ],
)
def test_a_url_that_cannot_work_is_refused_with_a_reason(url, problem):
    with pytest.raises(ValueError, match=problem):
        RedisBroker.check_url(url)


def test_settings_name_broker_url_and_never_the_password():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"BROKER_URL": "redis://user:s3cret-pw@h/0?heartbeat=99"})
    assert str(caught.value).startswith("BROKER_URL:")
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_defaults_keep_a_dead_process_s_members_within_30_s():
    parsed = RedisBroker("redis://h/0")._url
    assert parsed.node_ttl + parsed.heartbeat <= 30
    assert (parsed.prefix, parsed.db, parsed.port, parsed.tls) == ("svc", 0, 6379, False)
    assert RedisBroker("rediss://h:6380/3")._url.tls


@settings(max_examples=300, deadline=None)
@given(query=st.text(max_size=60))
def test_any_query_text_is_accepted_or_a_clean_value_error_without_the_password(query):
    url = f"redis://user:Sup3r-Secret@host/0?{query}"
    try:
        RedisBroker(url)  # construction checks the URL, and does no I/O
    except ValueError as exc:
        assert "Sup3r-Secret" not in str(exc) or "Sup3r-Secret" in query


@settings(max_examples=300, deadline=None)
@given(url=st.one_of(st.text(max_size=80), st.text(max_size=80).map("redis://".__add__)))
def test_any_url_text_is_accepted_or_a_clean_value_error(url):
    try:
        RedisBroker.check_url(url)
    except ValueError:
        pass


# -- life cycle ------------------------------------------------------------------


async def test_construction_does_no_io_and_open_says_unavailable():
    broker = RedisBroker("redis://127.0.0.1:1/0?timeout=0.5")  # nothing listens on port 1
    with pytest.raises(Unavailable) as caught:
        await broker.open(Recorder())
    assert "127.0.0.1:1" in str(caught.value)
    await broker.close()
    await broker.close()


async def test_close_is_safe_twice_and_ping_names_the_parts(open_brokers):
    [(broker, _)] = await open_brokers(1)
    assert await broker.ping() == {"redis": "ok", "pubsub": "ok"}
    await broker.close()
    await broker.close()
    with pytest.raises(Unavailable):
        await broker.ping()


# -- news ------------------------------------------------------------------------


async def test_a_change_reaches_every_instance_the_publisher_included(open_brokers):
    (one, heard_one), (_, heard_two) = await open_brokers(2)
    user_id = unique_id()
    change = Change(user_id, 3, _user(user_id, 3))
    await one.publish_change(change)
    await one.publish_change(Change(user_id, 4, None, deleted=True))
    for heard in (heard_one, heard_two):
        await wait_until(lambda heard=heard: len(heard.changes) == 2)
        first, second = heard.changes
        assert first == change and first.user.profile == change.user.profile
        assert first.user.profile["display_name"] == "Zoë ✓"
        assert first.user.updated_at == change.user.updated_at
        assert (second.version, second.deleted, second.user) == (4, True, None)


async def test_a_record_too_large_travels_as_id_and_version(open_brokers):
    (one, heard), _ = await open_brokers(2)
    user_id = unique_id()
    big = dataclasses.replace(_user(user_id, 2), profile={"bio": "x" * 70_000})  # > MAX_RECORD
    await one.publish_change(Change(user_id, 2, big))
    await wait_until(lambda: heard.changes)
    assert heard.changes == [Change(user_id, 2, None)]


async def test_messages_reach_the_others_in_order_and_not_the_publisher(open_brokers):
    (one, heard_one), (_, heard_two), (_, heard_three) = await open_brokers(3)
    room = unique_id("r")
    sent = [RoomMessage(room, "alice", f'{{"n":{n}}}') for n in range(50)]
    for message in sent:
        await one.publish_message(message)
    for heard in (heard_two, heard_three):
        await wait_until(lambda heard=heard: len(heard.messages) == 50)
        assert heard.messages == sent
    await asyncio.sleep(0.1)  # long enough for an echo to have come back, had it been sent
    assert heard_one.messages == []


# -- presence --------------------------------------------------------------------


async def test_first_and_last_holder_anywhere_are_the_transitions(open_brokers):
    (one, heard_one), (two, heard_two) = await open_brokers(2)
    room, alice = unique_id("r"), unique_id()
    await one.presence_join(room, alice)
    # Delivered to the instance that caused it before presence_join returned:
    assert heard_one.presence == [PresenceChange(room, alice, True)]
    await one.presence_join(room, alice)  # a second connection here
    await two.presence_join(room, alice)  # and one there
    await one.presence_leave(room, alice)
    await one.presence_leave(room, alice)
    assert await two.presence_members(room) == [alice]
    await two.presence_leave(room, alice)
    assert heard_two.presence[-1] == PresenceChange(room, alice, False)
    await wait_until(lambda: len(heard_one.presence) == 2)
    for heard in (heard_one, heard_two):
        assert heard.presence == [
            PresenceChange(room, alice, True),
            PresenceChange(room, alice, False),
        ]
    assert await one.presence_count(room) == 0
    await one.presence_leave(room, alice)  # holds none: a no-op
    assert await one.presence_members(room) == []


async def test_concurrent_joins_and_leaves_decide_each_transition_once(open_brokers):
    brokers = await open_brokers(4)
    room, bob = unique_id("r"), unique_id()
    for _ in range(5):
        await asyncio.gather(*(broker.presence_join(room, bob) for broker, _ in brokers))
        await asyncio.gather(*(broker.presence_leave(room, bob) for broker, _ in brokers))
    for _, heard in brokers:
        await wait_until(lambda heard=heard: len(heard.presence) == 10)
        assert [change.present for change in heard.presence] == [True, False] * 5


async def test_members_page_in_id_order_after_an_id(open_brokers):
    (one, _), (two, _) = await open_brokers(2)
    room = unique_id("r")
    ids = [f"user-{n:02d}" for n in range(25)] + ["A", "Z_", "a-b"]
    for n, user_id in enumerate(ids):
        await (one if n % 2 else two).presence_join(room, user_id)
    assert await one.presence_count(room) == len(ids)
    pages, after = [], None
    while True:
        page = await one.presence_members(room, after, 10)
        pages.append(page)
        if len(page) < 10:
            break
        after = page[-1]
    assert [len(page) for page in pages] == [10, 10, 8]
    assert sum(pages, []) == sorted(ids)
    assert await two.presence_members(room, "user-23", 100) == ["user-24"]
    assert await two.presence_members(unique_id("r")) == []


async def test_close_says_goodbye_at_once(open_brokers):
    (one, _), (two, heard_two) = await open_brokers(2)
    room, alice, bob = unique_id("r"), unique_id(), unique_id()
    await one.presence_join(room, alice)
    await one.presence_join(room, bob)
    await two.presence_join(room, bob)
    await one.close()
    await wait_until(lambda: PresenceChange(room, alice, False) in heard_two.presence)
    assert await two.presence_members(room) == [bob]  # still held by two


async def test_an_instance_that_stops_beating_is_expired_by_the_others(
    open_brokers, redis_url, caplog
):
    caplog.set_level(logging.WARNING, logger="svc_redis.broker")
    query = "&heartbeat=0.2&node_ttl=1"
    (dying, _), (alive, heard) = await open_brokers(2, query=query)
    room, alice = unique_id("r"), unique_id()
    await dying.presence_join(room, alice)
    await alive.presence_join(room, unique_id())
    # Dies without a goodbye: its heartbeat and its connections stop, nothing is removed.
    await dying.abandon()
    await wait_until(lambda: PresenceChange(room, alice, False) in heard.presence, timeout=15)
    assert alice not in await alive.presence_members(room)
    # The process that expired it says so, once.
    lines = [r.getMessage() for r in caplog.records if "expired node" in r.getMessage()]
    assert len(lines) == 1 and dying.node_id in lines[0], lines


async def test_a_leave_that_failed_midway_is_completed_by_the_next_heartbeat(open_brokers):
    (one, _), (two, heard) = await open_brokers(2, query="&heartbeat=0.2&node_ttl=1")
    room, alice = unique_id("r"), unique_id()
    await one.presence_join(room, alice)
    real_leave = one._scripts["LEAVE"]

    async def lost_connection(**kwargs):  # the script never reaches Redis this once
        one._scripts["LEAVE"] = real_leave
        raise redis.ConnectionError("connection lost (injected)")

    one._scripts["LEAVE"] = lost_connection
    with pytest.raises(Unavailable):
        await one.presence_leave(room, alice)
    # Not held here any more, so not a ghost while this process lives: the beat leaves it.
    await wait_until(lambda: PresenceChange(room, alice, False) in heard.presence, timeout=10)
    assert await two.presence_members(room) == []


# -- Redis down, and back -----------------------------------------------------------


async def test_redis_restarted_the_broker_reconnects_rejoins_and_reports_a_gap(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    url = f"{server.url}?heartbeat=0.2&node_ttl=1&timeout=0.5"
    one, two = RedisBroker(url), RedisBroker(url)
    heard_one, heard_two = Recorder(), Recorder()
    try:
        await one.open(heard_one)
        await two.open(heard_two)
        room, alice = unique_id("r"), unique_id()
        await one.presence_join(room, alice)

        server.kill()
        with pytest.raises(Unavailable, match="redis"):
            await one.ping()
        with pytest.raises(Unavailable):  # publishing fails (the write path swallows it)
            await one.publish_change(Change(alice, 2, None))
        with pytest.raises(Unavailable):  # and at once while Redis is known to be down
            await one.publish_change(Change(alice, 3, None))
        with pytest.raises(Unavailable):
            await two.presence_members(room)

        server.start()  # empty: the restart lost every key
        await wait_until(lambda: heard_one.gaps == 1 and heard_two.gaps == 1, timeout=15)
        # Presence was re-joined from what each process holds.
        assert await two.presence_members(room) == [alice]
        assert await one.ping() == {"redis": "ok", "pubsub": "ok"}
        await one.publish_change(Change(alice, 4, None))
        await wait_until(lambda: Change(alice, 4, None) in heard_two.changes)
        assert heard_one.gaps == 1 and heard_two.gaps == 1
        stats = one.stats()
        assert stats["redis_subscribed"] == 1.0 and stats["redis_reconnects"] == 1
        assert stats["redis_rejoins"] == 1 and stats["redis_held"] == 1
        assert stats["redis_published"] == 1  # the two refused during the outage not counted
    finally:
        await one.close()
        await two.close()
        server.kill()


# -- the hub on the Redis broker -----------------------------------------------------


async def test_a_presence_state_announced_again_is_not_news_for_clients(aiohttp_client, redis_url):
    # After Redis lost its keys, each process re-joins its members and announces them again.
    import redis.asyncio as aioredis
    from ws_helpers import frames_until_pong, join

    from svc.app import create_app
    from svc.broker import pubsub as codec
    from svc.settings import Settings

    app = create_app(Settings(bcrypt_rounds=4), broker=RedisBroker(redis_url))
    client = await aiohttp_client(app)
    room, alice, bob = unique_id("r"), unique_id(), unique_id()
    ws, _ = await join(client, room, alice)
    raw = aioredis.Redis.from_url(redis_url.partition("?")[0])
    channel = f"{RedisBroker(redis_url)._url.prefix}:bus"
    try:
        await asyncio.sleep(0.2)  # past the presence window of alice's own arrival
        await frames_until_pong(ws)
        for user_id in (alice, bob):  # alice again (present already), then bob (news)
            change = PresenceChange(room, user_id, True)
            await raw.publish(channel, codec.encode_presence("elsewhere", 1, change))
        await wait_until(lambda: bob in app[HUB].room(room).members)
        await asyncio.sleep(0.2)  # past the presence window: any frame has been sent
        frames = [f for f in await frames_until_pong(ws) if f["type"] == "presence"]
        assert [[u["id"] for u in f["joined"]] for f in frames] == [[bob]]
    finally:
        await raw.aclose()
        await ws.close()


# -- what travels on the channel ----------------------------------------------------------

_ids = st.text(min_size=1, max_size=64)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(room=_ids, user=_ids, version=st.integers(1, 2**53), name=st.text(), data=_json)
def test_every_event_survives_the_channel(room, user, version, name, data):
    from svc.broker import pubsub as codec

    record = dataclasses.replace(
        _user(user, version), profile={**_user(user, 1).profile, "bio": name}
    )
    for item in (
        Change(user, version, record),
        Change(user, version, None, deleted=True),
        RoomMessage(room, user, json.dumps(data)),
    ):
        if isinstance(item, Change):
            encoded = codec.encode_change("node", item, 64 * 1024)
        else:
            encoded = codec.encode_message("node", item)
        assert codec.decode(encoded.encode()).item == item
    change = PresenceChange(room, user, version % 2 == 0)
    event = codec.decode(codec.encode_presence("node", 7, change))
    assert (event.item, event.node, event.seq) == (change, "node", 7)


_event_like = st.fixed_dictionaries(
    {"t": st.sampled_from(["c", "m", "p", "x"])},
    optional={key: _json for key in ("n", "id", "v", "d", "u", "r", "f", "p", "s")},
)


@settings(max_examples=500, deadline=None)
@given(
    payload=st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _event_like.map(lambda v: json.dumps(v).encode())
)
def test_anything_else_on_the_channel_is_dropped_or_well_typed(payload):
    from svc.broker import pubsub as codec

    try:
        event = codec.decode(payload)
    except ValueError:
        return  # RedisBroker._on_payload logs it and goes on
    item = event.item
    ids = (item.user_id,) if isinstance(item, Change) else (item.room_id,)
    assert all(isinstance(value, str) for value in ids)
    if isinstance(item, Change):
        assert isinstance(item.version, int)
    elif isinstance(item, RoomMessage):
        assert isinstance(item.sender, str) and isinstance(item.data, str)
    else:
        assert isinstance(item.user_id, str) and isinstance(item.present, bool)
