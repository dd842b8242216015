"""The broker conformance suite: the delivery rules every svc broker keeps.

A broker author proves a broker by subclassing :class:`BrokerConformance` in
their own tests and overriding one fixture, ``broker_url``: every instance
made from that URL must share one backend, as two svc processes would
(pytest with pytest-aiohttp, ``asyncio_mode = auto``)::

    import pytest
    from svc.testing import BrokerConformance

    class TestRedisBroker(BrokerConformance):
        @pytest.fixture
        def broker_url(self):
            return "redis://127.0.0.1:6379/5"

A broker whose instances cannot be made from a URL alone overrides
``make_broker`` instead: a factory returning a new, unopened instance on the
shared backend.  To check the expiry of an instance that dies without
``close``, override ``crash`` too (by default that test is skipped).

Each test makes its own room and user ids, so the suite may run against a
backend that other tests (or services) are using.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from ..broker import Broker, Change, PasswordSet, PresenceChange, RoomMessage
from ..broker.registry import get_plugin
from ..storage import PROFILE_FIELDS, User
from .helpers import unique_id, wait_until
from .history import RoomHistoryConformance

__all__ = ["BrokerConformance", "Recorder"]

#: Seconds a delivery may take before a test calls it lost.
DELIVERY_TIMEOUT = 10.0
#: How long an instance that died may stay present (the contract: 30 s).
EXPIRY_TIMEOUT = 30.0
#: The largest message data svc relays (a client's message is at most 8 KiB).
MAX_DATA = 8 * 1024


class Recorder:
    """A broker listener that writes down what it hears; ``failing`` makes every call raise."""

    def __init__(self, name: str = "listener"):
        self.name = name
        self.changes: list[Change] = []
        self.messages: list[RoomMessage] = []
        self.presence: list[PresenceChange] = []
        self.password_sets: list[PasswordSet] = []
        self.gaps = 0
        self.failing = False

    def on_change(self, change: Change) -> None:
        self.changes.append(change)
        self._maybe_fail()

    def on_message(self, message: RoomMessage) -> None:
        self.messages.append(message)
        self._maybe_fail()

    def on_presence(self, change: PresenceChange) -> None:
        self.presence.append(change)
        self._maybe_fail()

    def on_password_set(self, event: PasswordSet) -> None:
        self.password_sets.append(event)
        self._maybe_fail()

    def on_gap(self) -> None:
        self.gaps += 1

    def _maybe_fail(self) -> None:
        if self.failing:
            raise RuntimeError(f"{self.name} fails on purpose (BrokerConformance)")

    # -- what one test cares about --------------------------------------------------

    def changes_of(self, user_id: str) -> list[Change]:
        return [change for change in self.changes if change.user_id == user_id]

    def messages_in(self, room_id: str) -> list[RoomMessage]:
        return [message for message in self.messages if message.room_id == room_id]

    def presence_in(self, room_id: str) -> list[PresenceChange]:
        return [change for change in self.presence if change.room_id == room_id]


def first_seen(changes: list[Change]) -> list[int]:
    """The versions in the order they first arrived (a broker may deliver one twice)."""
    seen: list[int] = []
    for change in changes:
        if change.version not in seen:
            seen.append(change.version)
    return seen


def a_user(user_id: str, version: int, **profile) -> User:
    moment = datetime(2024, 5, 17, 12, 30, 15, 123456, tzinfo=timezone.utc)
    return User(
        id=user_id,
        profile={name: profile.get(name) for name in PROFILE_FIELDS},
        version=version,
        created_at=moment,
        updated_at=moment.replace(second=version % 60),
    )


async def eventually(predicate: Callable[[], bool], rule: str, timeout=DELIVERY_TIMEOUT) -> None:
    try:
        await wait_until(predicate, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"rule broken: {rule} (nothing after {timeout:g} s)") from None


async def make_present(joiner: Broker, listeners: list, user_id: str) -> None:
    """Changes need reach only the users present somewhere (a broker may skip the others'):
    join ``user_id`` to a room through ``joiner`` and wait until every listener heard it."""
    room = unique_id("r")
    await joiner.presence_join(room, user_id)
    await eventually(
        lambda: all(
            any(change.user_id == user_id for change in heard.presence_in(room))
            for heard in listeners
        ),
        "a join reaches every instance",
    )


class BrokerConformance(RoomHistoryConformance):
    """Override the ``broker_url`` fixture (or ``make_broker``); every ``test_*`` then runs
    on your broker (the room history's too: :mod:`svc.testing.history`)."""

    @pytest.fixture
    def broker_url(self) -> str:  # pragma: no cover - always overridden
        raise NotImplementedError("override `broker_url` (or `make_broker`) in your subclass")

    @pytest.fixture
    def make_broker(self, broker_url: str) -> Callable[[], Broker]:
        """A new, unopened broker instance on the shared backend, each time it is called."""
        plugin = get_plugin(broker_url)
        return lambda: plugin(broker_url)

    @pytest.fixture
    async def crash(self):
        """``await crash(broker)``: stop ``broker`` as a process that dies would: no goodbye,
        no more heartbeat.  Override to check the expiry of dead instances."""
        pytest.skip("override the `crash` fixture to check that dead instances expire")

    @pytest.fixture
    async def open_broker(self, make_broker):
        """``await open_broker(name)`` → (an opened broker, its Recorder); closed afterwards."""
        opened: list[Broker] = []

        async def factory(name: str = "listener") -> tuple[Broker, Recorder]:
            broker, recorder = make_broker(), Recorder(name)
            await broker.open(recorder)
            opened.append(broker)
            return broker, recorder

        yield factory
        for broker in opened:
            await broker.close()

    # -- life cycle -----------------------------------------------------------------

    async def test_ping_says_ok_for_each_part(self, open_broker):
        broker, _ = await open_broker()
        parts = await broker.ping()
        assert parts and isinstance(parts, dict), "rule broken: ping() names the parts it checked"
        assert set(parts.values()) == {"ok"}, f"rule broken: ping() of a healthy broker: {parts}"

    async def test_close_is_safe_twice_and_without_open(self, make_broker, open_broker):
        never_opened = make_broker()  # construction does no I/O
        await never_opened.close()
        await never_opened.close()
        broker, _ = await open_broker()
        await broker.close()
        await broker.close()

    # -- changes --------------------------------------------------------------------

    async def test_changes_reach_every_instance_including_the_publisher_in_order(self, open_broker):
        (one, heard_by_one), (two, heard_by_two) = (
            await open_broker("one"),
            await open_broker("two"),
        )
        user_id = unique_id()
        await make_present(two, [heard_by_one, heard_by_two], user_id)  # present on the other
        published = [Change(user_id, v, a_user(user_id, v, bio=f"b{v}")) for v in range(1, 21)]
        for change in published:
            await one.publish_change(change)
        for name, heard in (("the publisher", heard_by_one), ("another instance", heard_by_two)):
            await eventually(
                lambda heard=heard: len(first_seen(heard.changes_of(user_id))) == 20,
                f"every change reaches {name}",
            )
            assert first_seen(heard.changes_of(user_id)) == list(range(1, 21)), (
                f"rule broken: changes reach {name} in the order published"
            )
            for change in heard.changes_of(user_id):
                sent = published[change.version - 1]
                assert change.user is None or change.user == sent.user, (
                    f"rule broken: a change reaches {name} as published (or id and version only)"
                )
                assert not change.deleted, "rule broken: only a deletion is `deleted`"

    async def test_concurrent_changes_arrive_in_the_order_published(self, open_broker):
        (one, heard_by_one), (two, heard_by_two) = (
            await open_broker("one"),
            await open_broker("two"),
        )
        user_id = unique_id()
        await make_present(two, [heard_by_one, heard_by_two], user_id)
        await asyncio.gather(
            *(one.publish_change(Change(user_id, v, a_user(user_id, v))) for v in range(1, 51))
        )
        for heard in (heard_by_one, heard_by_two):
            await eventually(
                lambda heard=heard: len(first_seen(heard.changes_of(user_id))) == 50,
                "every change of a burst arrives",
            )
            assert first_seen(heard.changes_of(user_id)) == list(range(1, 51)), (
                "rule broken: a burst of changes arrives in the order published"
            )

    async def test_a_change_right_after_a_join_elsewhere_reaches_the_joiner(self, open_broker):
        """A member's welcome may have read the record before this change: the change must
        reach them, even when the publisher has not yet heard of the join."""
        (one, _), (two, heard) = await open_broker("one"), await open_broker("two")
        user_id = unique_id()
        await two.presence_join(unique_id("r"), user_id)
        await one.publish_change(Change(user_id, 2, a_user(user_id, 2)))  # no wait between
        await eventually(
            lambda: 2 in first_seen(heard.changes_of(user_id)),
            "a change published after a join returned, anywhere, reaches the joiner's instance",
        )

    async def test_a_deletion_stays_a_deletion(self, open_broker):
        (one, heard_by_one), (two, heard) = await open_broker("one"), await open_broker("two")
        user_id = unique_id()
        await make_present(two, [heard_by_one, heard], user_id)
        await one.publish_change(Change(user_id, 1, a_user(user_id, 1)))
        await one.publish_change(Change(user_id, 2, None, deleted=True))
        await eventually(lambda: len(first_seen(heard.changes_of(user_id))) == 2, "changes arrive")
        last = heard.changes_of(user_id)[-1]
        assert (last.version, last.deleted, last.user) == (2, True, None), (
            f"rule broken: a deleted change arrives as `deleted`, without a record: {last}"
        )

    # -- messages -------------------------------------------------------------------

    async def test_messages_reach_the_others_once_in_order_and_not_the_publisher(self, open_broker):
        one, heard_by_one = await open_broker("one")
        two, heard_by_two = await open_broker("two")
        _, heard_by_three = await open_broker("three")
        room = unique_id("r")
        biggest = '"' + "x" * (MAX_DATA - 2) + '"'  # data is serialised JSON text
        sent = [
            RoomMessage(room, "alice", '{"n":1}'),
            RoomMessage(room, "alice", '"same"'),
            RoomMessage(room, "alice", '"same"'),  # equal messages are two messages
            RoomMessage(room, "alice", biggest),
            RoomMessage(room, "bob", '["\\u00e9",null,true,1.5]'),
            RoomMessage(room, "alice", '{"n":"last"}'),
        ]
        for message in sent:
            await one.publish_message(message)
        for name, heard in (("another instance", heard_by_two), ("a third", heard_by_three)):
            await eventually(
                lambda heard=heard: len(heard.messages_in(room)) >= len(sent),
                f"every message reaches {name}",
            )
            assert heard.messages_in(room) == sent, (
                f"rule broken: messages reach {name} once each, in order, "
                f"with data up to {MAX_DATA} bytes intact"
            )
        # A message from two marks the point one's own messages would have reached it by.
        marker = RoomMessage(room, "bob", '"marker"')
        await two.publish_message(marker)
        await eventually(lambda: heard_by_one.messages_in(room), "messages reach the others")
        assert heard_by_one.messages_in(room) == [marker], (
            "rule broken: a message does not come back to the instance that published it"
        )

    async def test_concurrent_messages_keep_their_call_order(self, open_broker):
        """Only for a broker that says ``messages_in_call_order``: svc's hub then calls
        ``publish_message`` again before the previous call returned (a task per message,
        started in the order sent), and the calls must be taken in that order."""
        one, _ = await open_broker("one")
        if not one.messages_in_call_order:
            pytest.skip("messages_in_call_order is False: svc calls publish_message once at a time")
        _, heard = await open_broker("two")
        room = unique_id("r")
        sent = [RoomMessage(room, f"u{n % 7}", str(n)) for n in range(200)]
        answers = await asyncio.gather(*(one.publish_message(m) for m in sent))
        await eventually(
            lambda: len(heard.messages_in(room)) >= len(sent), "every message of a burst arrives"
        )
        assert heard.messages_in(room) == sent, (
            "rule broken: with messages_in_call_order, concurrent publish_message calls "
            "reach the others once each, in the order of the calls"
        )
        numbers = [(a.epoch, a.seq) for a in answers if a is not None and a.seq is not None]
        if numbers:  # a broker that numbers: in call order, as the others hear them
            seqs = [seq for _, seq in numbers]
            assert seqs == list(range(seqs[0], seqs[0] + len(sent))), (
                "rule broken: concurrent publish_message calls are numbered in call order"
            )
            assert [(m.epoch, m.seq) for m in heard.messages_in(room)] == numbers, (
                "rule broken: the others hear each message with the number its call returned"
            )

    async def test_password_sets_reach_the_others_and_not_the_publisher(self, open_broker):
        one, heard_by_one = await open_broker("one")
        two, heard_by_two = await open_broker("two")
        if type(one).publish_password_set is Broker.publish_password_set:
            pytest.skip("this broker does not carry password sets (optional)")
        user = unique_id("u")
        sent = [PasswordSet(user, 1765000000.123456), PasswordSet(user, 1765000001.5)]
        for event in sent:
            await one.publish_password_set(event)
        await eventually(
            lambda: len(heard_by_two.password_sets) >= len(sent), "password sets reach the others"
        )
        assert heard_by_two.password_sets == sent, (
            "rule broken: password sets reach another instance once each, in order, with the "
            "moment to the microsecond"
        )
        # And not the publisher: a set from two marks the point one's would have come back by.
        marker = PasswordSet(unique_id("u"), 1.0)
        await two.publish_password_set(marker)
        await eventually(lambda: heard_by_one.password_sets, "password sets reach the others")
        assert heard_by_one.password_sets == [marker], (
            "rule broken: a password set does not come back to the instance that published it"
        )
        assert heard_by_two.messages == [], "rule broken: a password set is not a room message"

    # -- presence -------------------------------------------------------------------

    async def test_one_announcement_per_transition_however_many_holders(self, open_broker):
        one, heard_by_one = await open_broker("one")
        two, heard_by_two = await open_broker("two")
        room, user = unique_id("r"), unique_id()
        joined, left = PresenceChange(room, user, True), PresenceChange(room, user, False)

        await one.presence_join(room, user)
        assert heard_by_one.presence_in(room) == [joined], (
            "rule broken: a transition caused here is delivered before presence_join returns"
        )
        await one.presence_join(room, user)  # a second connection on the same instance
        await two.presence_join(room, user)  # and one on another instance
        await eventually(lambda: heard_by_two.presence_in(room), "presence reaches every instance")
        assert await two.presence_members(room) == [user]
        assert await one.presence_count(room) == 1, "rule broken: a user counts once"

        await one.presence_leave(room, user)
        await one.presence_leave(room, user)
        await one.presence_leave(room, user)  # holds none now: a no-op
        assert await two.presence_count(room) == 1, "rule broken: present while anyone holds them"
        await two.presence_leave(room, user)
        assert heard_by_two.presence_in(room)[-1] == left, (
            "rule broken: a transition caused here is delivered before presence_leave returns"
        )
        await eventually(lambda: left in heard_by_one.presence_in(room), "a leave reaches everyone")
        for name, heard in (("one", heard_by_one), ("two", heard_by_two)):
            assert heard.presence_in(room) == [joined, left], (
                f"rule broken: one announcement per transition, at every instance ({name}: "
                f"{heard.presence_in(room)})"
            )
        assert await one.presence_count(room) == 0
        assert await one.presence_members(room) == []

    async def test_concurrent_joins_are_each_answered_as_if_alone(self, open_broker):
        (one, heard_by_one), (two, _) = await open_broker("one"), await open_broker("two")
        room, elsewhere = unique_id("r"), unique_id("r")
        users = sorted(unique_id() for _ in range(20))
        await two.presence_join(room, users[0])  # already present through another instance
        await eventually(lambda: heard_by_one.presence_in(room), "presence reaches every instance")
        await asyncio.gather(
            *(one.presence_join(room, user) for user in users),
            one.presence_join(room, users[1]),  # a second connection, at the same moment
            *(one.presence_join(elsewhere, user) for user in users[:5]),
        )
        joined = [c.user_id for c in heard_by_one.presence_in(room) if c.present]
        assert sorted(joined) == users, (
            f"rule broken: one announcement per transition, however the joins interleave "
            f"({len(joined)} joins announced for {len(users)} users)"
        )
        assert await two.presence_members(room) == users
        assert await two.presence_members(elsewhere) == users[:5]
        await one.presence_leave(room, users[1])
        assert await two.presence_count(room) == 20, "rule broken: present while anyone holds them"
        for user in users:
            await one.presence_leave(room, user)
        assert await two.presence_members(room) == [users[0]], (
            "rule broken: a user another instance holds stays present"
        )

    async def test_members_page_in_id_order(self, open_broker):
        (one, _), (two, _) = await open_broker("one"), await open_broker("two")
        room = unique_id("r")
        users = sorted(unique_id() for _ in range(7))
        for index, user in enumerate(reversed(users)):
            await (one if index % 2 else two).presence_join(room, user)
        assert await one.presence_count(room) == 7
        assert await one.presence_members(room, None, 3) == users[:3], (
            "rule broken: presence_members pages in id order"
        )
        assert await two.presence_members(room, users[2], 3) == users[3:6], (
            "rule broken: presence_members starts after `after`"
        )
        assert await one.presence_members(room, users[5], 3) == users[6:]
        assert await one.presence_members(room, users[-1]) == []
        assert await one.presence_members(unique_id("r")) == []
        assert await two.presence_count(unique_id("r")) == 0

    async def test_close_says_goodbye(self, open_broker):
        (one, _), (two, heard_by_two) = await open_broker("one"), await open_broker("two")
        room, user, staying = unique_id("r"), unique_id(), unique_id()
        await one.presence_join(room, user)
        await two.presence_join(room, staying)
        await eventually(
            lambda: PresenceChange(room, user, True) in heard_by_two.presence_in(room),
            "presence reaches every instance",
        )
        await one.close()  # no presence_leave: the instance goes, and its members with it
        await eventually(
            lambda: PresenceChange(room, user, False) in heard_by_two.presence_in(room),
            "close() removes the instance's presence at once: the others see the leave",
        )
        assert await two.presence_members(room) == [staying]
        await one.close()

    async def test_an_instance_that_dies_is_expired_by_the_others(self, open_broker, crash):
        (one, _), (two, heard_by_two) = await open_broker("one"), await open_broker("two")
        room, user = unique_id("r"), unique_id()
        await one.presence_join(room, user)
        await eventually(lambda: heard_by_two.presence_in(room), "presence reaches every instance")
        await crash(one)
        await eventually(
            lambda: PresenceChange(room, user, False) in heard_by_two.presence_in(room),
            "the members of an instance that died without close() leave within 30 s",
            timeout=EXPIRY_TIMEOUT,
        )
        assert await two.presence_count(room) == 0

    # -- a listener in trouble -------------------------------------------------------

    async def test_a_listener_that_raises_does_not_stop_delivery(self, open_broker):
        (one, failing), (two, fine) = await open_broker("failing"), await open_broker("fine")
        room, user = unique_id("r"), unique_id()
        await make_present(two, [failing, fine], user)
        failing.failing = True
        for version in (1, 2):
            await one.publish_change(Change(user, version, a_user(user, version)))
        await two.publish_message(RoomMessage(room, "bob", '"one"'))
        await two.publish_message(RoomMessage(room, "bob", '"two"'))
        await one.presence_join(room, user)
        await eventually(
            lambda: len(fine.changes_of(user)) >= 2 and fine.presence_in(room),
            "a listener that raises does not stop delivery to the others",
        )
        await eventually(
            lambda: (
                len(first_seen(failing.changes_of(user))) == 2
                and len(failing.messages_in(room)) == 2
            ),
            "a listener that raised still gets what follows",
        )
