"""What every pub/sub broker shares (svc/broker/pubsub.py), on its own: the wire format,
including what processes of the previous release send and read (docs/brokers.md, "Mixed
versions"), delivery shielded from a failing listener, and a node skipping its own echo.
The transports themselves are tested against the real servers by the conformance suites."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from svc.broker import (
    BrokerMisconfigured,
    BrokerUnavailable,
    Change,
    PresenceChange,
    RoomMessage,
    calling_the_broker,
)
from svc.broker.pubsub import PubSubBroker, decode, encode_change, encode_message
from svc.storage import PROFILE_FIELDS, Misconfigured, Unavailable, User

MOMENT = datetime(2026, 12, 6, 13, 0, 0, 123456, tzinfo=timezone.utc)
PROFILE = {"username": "zoë", "display_name": "Zoë", "avatar_urls": []}
USER = User(id="u1", profile=PROFILE, version=3, created_at=MOMENT, updated_at=MOMENT)
# A record as it comes back from the channel: every profile field present.
HEARD = User(
    id="u1",
    profile={name: PROFILE.get(name) for name in PROFILE_FIELDS},
    version=3,
    created_at=MOMENT,
    updated_at=MOMENT,
)

# -- what the previous release sends (made by its code, svc_postgres/payloads.py and
# -- svc_redis/codec.py at 3b4b270), and must still be read -------------------------------

PREVIOUS_POSTGRES_CHANGE = (
    '{"n":"pg-node","id":"u1","v":3,"p":{"display_name":"Zo\\u00eb","username":"zo\\u00eb",'
    '"bio":null,"email":null,"avatar_url":null,"avatar_urls":[]},'
    '"c":"2026-12-06T13:00:00.123456+00:00","u":"2026-12-06T13:00:00.123456+00:00"}'
)
PREVIOUS_POSTGRES_DELETION = '{"n":"pg-node","id":"u1","v":4,"d":true}'
PREVIOUS_POSTGRES_MESSAGE = '{"n":"pg-node","s":7,"r":"r1","f":"u1","d":"{\\"a\\":\\"\\u00e9\\"}"}'
PREVIOUS_REDIS_CHANGE = (
    '{"t":"c","n":"redis-node","id":"u1","v":3,"u":{"p":{"display_name":"Zoë","username":"zoë",'
    '"bio":null,"email":null,"avatar_url":null,"avatar_urls":[]},'
    '"c":"2026-12-06T13:00:00.123456+00:00","m":"2026-12-06T13:00:00.123456+00:00"}}'
)
PREVIOUS_REDIS_MESSAGE = '{"t":"m","n":"redis-node","r":"r1","f":"u1","d":"{\\"a\\":\\"é\\"}"}'


def test_what_the_previous_postgres_broker_sends_is_read():
    event = decode(PREVIOUS_POSTGRES_CHANGE, "c")
    assert (event.node, event.item) == ("pg-node", Change("u1", 3, HEARD))
    assert decode(PREVIOUS_POSTGRES_DELETION, "c").item == Change("u1", 4, None, deleted=True)
    event = decode(PREVIOUS_POSTGRES_MESSAGE, "m")
    assert (event.node, event.item) == ("pg-node", RoomMessage("r1", "u1", '{"a":"é"}'))


def test_what_the_previous_redis_broker_sends_is_read():
    assert decode(PREVIOUS_REDIS_CHANGE.encode()).item == Change("u1", 3, HEARD)
    assert decode(PREVIOUS_REDIS_MESSAGE.encode()).item == RoomMessage("r1", "u1", '{"a":"é"}')


def _previous_postgres_reader(channel: str, payload: str):
    """The previous release's Postgres parse_change / parse_message, condensed."""
    data = json.loads(payload)
    if channel == "svc_users":
        if data.get("d"):
            return data["n"], Change(data["id"], data["v"], None, deleted=True)
        user = None
        if "p" in data:  # the new payload nests the record: the reader reads it from storage
            user = "a record"
        return data["n"], Change(data["id"], data["v"], user)
    return data["n"], RoomMessage(data["r"], data["f"], data["d"])


def test_what_this_release_sends_the_previous_postgres_broker_reads():
    # Its change comes without the record (the hub reads it from storage): slower, not wrong.
    assert _previous_postgres_reader(
        "svc_users", encode_change("new", Change("u1", 3, USER), 7900)
    ) == ("new", Change("u1", 3, None))
    deletion = Change("u1", 4, None, deleted=True)
    assert _previous_postgres_reader("svc_users", encode_change("new", deletion, 7900)) == (
        "new",
        deletion,
    )
    message = RoomMessage("r1", "u1", '{"a":"é"}')
    assert _previous_postgres_reader("svc_messages", encode_message("new", message, 7)) == (
        "new",
        message,
    )
    # Two equal messages of one batch stay two notifications (Postgres folds equal ones).
    assert encode_message("new", message, 7) != encode_message("new", message, 8)


def test_a_change_too_large_for_the_transport_travels_as_id_and_version():
    big = User(
        id="u1", profile={"bio": "é" * 2000}, version=3, created_at=MOMENT, updated_at=MOMENT
    )
    payload = encode_change("node", Change("u1", 3, big), 7900)
    assert payload.isascii() and len(payload) <= 7900  # bytes, whatever the text
    assert decode(payload).item == Change("u1", 3, None)
    fits = encode_change("node", Change("u1", 3, big), 64 * 1024)
    assert decode(fits).item.user.profile["bio"] == "é" * 2000
    # The user id leads: whose change it is can be told from the payload's first bytes.
    assert payload.startswith('{"t":"c","id":"u1",')


@pytest.mark.parametrize(
    "payload",
    ['{"id":"u1","v":3}', '{"t":"c","id":1,"v":3}', '{"t":"c","id":"u1","v":-1}', "[1]", "x"],
)
def test_anything_else_is_refused_as_not_an_event(payload):
    with pytest.raises(ValueError):
        decode(payload)


class _Recorder:
    def __init__(self, fail_on: str | None = None):
        self.heard: list = []
        self._fail_on = fail_on

    def _hear(self, item) -> None:
        if self._fail_on is not None and getattr(item, "room_id", None) == self._fail_on:
            raise RuntimeError("a listener bug")
        self.heard.append(item)

    on_change = on_message = on_presence = _hear

    def on_gap(self) -> None:
        self.heard.append("gap")


class _Broker(PubSubBroker):
    """The shared half alone: no transport (the abstract methods are never called)."""

    open = close = ping = publish_change = publish_message = None
    presence_join = presence_leave = presence_members = presence_count = None


def _event(node: str, item):
    if isinstance(item, Change):
        return decode(encode_change(node, item, 7900))
    return decode(encode_message(node, item))


@pytest.mark.parametrize("changes_at_publish", [False, True])
async def test_a_node_skips_its_own_messages_and_where_it_delivered_them_its_own_changes(
    changes_at_publish,
):
    broker = _Broker("test://")
    broker.node_id, broker.listener = "me", _Recorder()
    broker.changes_delivered_at_publish = changes_at_publish
    change, message = Change("u1", 3, None), RoomMessage("r1", "u1", "1")
    for node in ("me", "other"):
        broker.dispatch(_event(node, change))
        broker.dispatch(_event(node, message))
    own_change = [] if changes_at_publish else [change]
    assert broker.listener.heard == [*own_change, change, message]


async def test_a_listener_that_fails_does_not_stop_delivery():
    reported = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    try:
        broker = _Broker("test://")
        broker.node_id, broker.listener = "me", _Recorder(fail_on="bad")
        broker.dispatch(_event("other", RoomMessage("bad", "u1", "1")))
        broker.dispatch(_event("other", RoomMessage("good", "u1", "2")))
        broker.heard_presence(_presence_event(), own=False)
    finally:
        loop.set_exception_handler(None)
    assert [str(exc) for exc in reported] == ["a listener bug"]
    assert broker.listener.heard == [
        RoomMessage("good", "u1", "2"),
        PresenceChange("r1", "u1", True),
    ]


def _presence_event():
    from svc.broker.pubsub import encode_presence

    return decode(encode_presence("other", 1, PresenceChange("r1", "u1", True)))


def test_calling_the_broker_tells_the_brokers_errors_apart():
    for raised, expected in (
        (Unavailable, BrokerUnavailable),
        (Misconfigured, BrokerMisconfigured),
    ):
        with pytest.raises(expected, match="down"), calling_the_broker():
            raise raised("down")
    # Still the errors svc and the storage plugins catch.
    assert issubclass(BrokerUnavailable, Unavailable)
    assert issubclass(BrokerMisconfigured, Misconfigured)


class _Choosy(_Recorder):
    def __init__(self, members: set[str]):
        super().__init__()
        self.members = members

    def wants_change(self, user_id: str) -> bool:
        if user_id == "boom":
            raise RuntimeError("a listener bug")
        return user_id in self.members


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_change_of_a_user_with_no_member_here_is_skipped_before_decoding(as_bytes):
    broker = _Broker("test://")
    broker.node_id, broker.listener = "me", _Choosy({"here", 'q"uote', "zoë"})

    def unwanted(payload: str) -> bool:
        return broker.unwanted(payload.encode() if as_bytes else payload)

    def change(user_id: str) -> str:
        return encode_change("other", Change(user_id, 3, None), 7900)

    assert unwanted(change("elsewhere"))
    assert not unwanted(change("here"))
    # Ids the prefix cannot tell safely are decoded in full (the hub then decides).
    assert not unwanted(change('q"uote')) and not unwanted(change("zoë"))
    assert not unwanted(change("no\\where"))
    assert not unwanted(change("boom"))  # a listener that fails is still handed it
    # Anything but a change, or a change in the previous release's format: decoded.
    assert not unwanted(encode_message("other", RoomMessage("elsewhere", "elsewhere", "1")))
    assert not unwanted(PREVIOUS_POSTGRES_DELETION)
    # A listener that does not say (the conformance suite's) hears every change.
    broker.listener = _Recorder()
    assert not unwanted(change("elsewhere"))
