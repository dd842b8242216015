"""``Broker``: what crosses processes.  Committed user changes, room messages, presence.

svc processes that share a broker are one service.  A broker is a plugin,
registered in the ``svc.broker`` entry-point group under its URL scheme and
chosen by ``BROKER_URL`` (by default the storage's own, see
``Storage.default_broker_url``, else ``memory://``).  It is the only
cross-process channel: storage keeps users, the broker moves news.

How delivery works: svc opens the broker with a :class:`BrokerListener` (the
rooms hub) and the broker calls it on the event loop, never concurrently:

- ``on_change``: every change published by any instance, this one included,
  exactly as published, of every user present in some room (a ``presence_join``
  holds them anywhere).  A change of a user present nowhere is news to no room:
  the publisher's own listener gets it, the others may not (the Postgres broker
  sends those no NOTIFY).  A change may arrive twice or late; the listener drops
  versions it has already seen.
- ``on_message``: every room message published by any *other* instance (the
  publisher's own process delivered it locally already), in the order each
  instance published them.
- ``on_presence``: every transition of the whole service (a user's first
  connection in a room anywhere, and their last), including those this
  instance caused.  One caused here is delivered before ``presence_join`` or
  ``presence_leave`` returns, so a joiner's welcome counts them.
- ``on_password_set``: a password set through any *other* instance (the publisher's
  own process acted on it already).  Optional on both sides: see
  :meth:`Broker.publish_password_set`.
- ``on_gap``: the broker may have missed deliveries (its connection was down).
  The listener repairs by re-reading what it cares about from storage.

A listener may also have ``wants_change(user_id) -> bool``: False says it would drop
that user's change unread (no member here), so a broker may skip it before decoding it.

Rules every broker keeps (``svc.testing.BrokerConformance`` checks each):
construction does no I/O; ``open`` raises ``BrokerUnavailable`` for "not yet" and
``BrokerMisconfigured`` for "never" (plain ``svc.storage`` ``Unavailable`` and
``Misconfigured``, their bases, are taken too);
``close`` is safe twice and after a failed ``open``, and removes this
instance's presence at once (others then see those users leave); an instance
that dies without ``close`` is expired by the others within 30 s.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ..storage.errors import Misconfigured, Unavailable
from ..storage.models import User


@dataclass(frozen=True)
class Change:
    """A committed change of user ``user_id``, now at ``version``.

    ``user`` is the record after the change, or ``None`` when only the id and
    version travelled (a record too large for the broker's message; the
    listener reads it from storage).  ``deleted``: the user was deleted; the
    deletion's version is the last version + 1.
    """

    user_id: str
    version: int
    user: User | None
    deleted: bool = False
    #: room → (epoch, seq): the event number the broker gave this change in each room where
    #: the user is present (None: the broker numbers nothing; see :meth:`Broker.room_position`)
    seqs: dict[str, tuple[str, int]] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """``user_id`` became present in (or absent from) room ``room_id``, service-wide.

    Slots: a room's history (resume) keeps up to 100 of them, about one per member of a
    room of 100, for as long as its sockets idle."""

    room_id: str
    user_id: str
    present: bool
    #: the room's history (epoch) and event number the broker gave it (None: none given)
    epoch: str | None = field(default=None, compare=False)
    seq: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RoomMessage:
    """A member's message to a room: ``data`` is already serialised JSON text."""

    room_id: str
    sender: str
    data: str
    epoch: str | None = field(default=None, compare=False)
    seq: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PasswordSet:
    """User ``user_id`` set a new password at ``at`` (unix seconds, to the microsecond):
    every socket of theirs that joined with a login token issued before it must close."""

    user_id: str
    at: float


class BrokerUnavailable(Unavailable):
    """The broker, not storage, cannot answer now ("not yet": retried; a 503 body or a 4503
    close says so).  What a broker plugin raises; a plain ``svc.storage.Unavailable``
    (its base) is taken too: svc tells the two apart where it calls the broker
    (:func:`calling_the_broker`)."""


class BrokerMisconfigured(Misconfigured):
    """The broker's configuration can never work (a refused password, a URL through which
    it cannot listen): start-up stops with one line.  What a broker plugin raises."""


@contextmanager
def calling_the_broker() -> Iterator[None]:
    """Around calls to the broker: its ``Unavailable`` becomes :class:`BrokerUnavailable`
    and its ``Misconfigured`` :class:`BrokerMisconfigured`."""
    try:
        yield
    except (BrokerUnavailable, BrokerMisconfigured):
        raise
    except Unavailable as exc:
        raise BrokerUnavailable(str(exc)) from exc
    except Misconfigured as exc:
        raise BrokerMisconfigured(str(exc)) from exc


class BrokerListener(Protocol):
    def on_change(self, change: Change) -> None: ...
    def on_message(self, message: RoomMessage) -> None: ...
    def on_presence(self, change: PresenceChange) -> None: ...
    def on_gap(self) -> None: ...


#: One event of a room's history: a message, a presence transition, or a change of a member
#: (its number in that room is the event's ``seq``, or for a change ``seqs[room]``).
RoomEvent = RoomMessage | PresenceChange | Change


@dataclass(frozen=True)
class RoomHistory:
    """What :meth:`Broker.room_history` found: the room's ``epoch``, its last event number
    ``seq``, and ``events`` (seq, event) after the one asked for, in order."""

    epoch: str
    seq: int
    events: list[tuple[int, RoomEvent]]


class Broker(abc.ABC):
    """The interface of a broker (9 coroutines, and 2 more for resuming: optional)."""

    #: Events kept per room for resume (``ROOM_HISTORY``; 0: none, resume is off) and for
    #: how many seconds (``ROOM_HISTORY_TTL``); set by svc before ``open``.
    history_size = 100
    history_ttl = 300.0

    #: True: ``publish_message`` takes its message into the broker's order before its first
    #: ``await`` (it queues it, as the built-in brokers' one-statement-in-flight publishers
    #: do), so calls made one after another keep that order however many are in flight.
    #: svc's hub then hands over each message at once, without waiting for the one before,
    #: and one round trip of the broker carries many.  False (the default, safe for any
    #: broker): the hub waits for each call to return before it makes the next, so a
    #: process's messages go out at one per round trip.  docs/brokers.md, "Messages in
    #: call order"; the conformance kit checks a broker that says True.
    messages_in_call_order = False

    #: svc's calls to this broker that failed: changes or messages it could not take, and
    #: requests answered 503 because of it (``svc_broker_errors``).  Counted by svc where it
    #: calls the broker, the one counter of them all; a plugin leaves it alone.
    errors = 0

    def __init__(self, url: str):
        self.url = url

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ValueError, for a person, if ``url`` cannot work.  No I/O, no password echoed."""
        return None

    def stats(self) -> dict[str, float]:
        """Figures for ``/metrics`` (name → value, e.g. ``feed_lag_seconds``).  Optional."""
        return {}

    # -- life cycle -------------------------------------------------------

    @abc.abstractmethod
    async def open(self, listener: BrokerListener) -> None:
        """Connect and start delivering to ``listener``.  Unavailable: retried."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivering, drop this instance's presence, release everything.  Safe twice."""

    @abc.abstractmethod
    async def ping(self) -> dict[str, str]:
        """Readiness: part name → ``"ok"``; raise Unavailable naming the part that is down."""

    # -- news ---------------------------------------------------------------

    @abc.abstractmethod
    async def publish_change(self, change: Change) -> None:
        """Deliver ``change`` to every instance (this one included).  Called after commit."""

    @abc.abstractmethod
    async def publish_message(self, message: RoomMessage) -> RoomMessage | None:
        """Deliver ``message`` to every other instance, in the order published.  A broker
        that numbers room events returns it numbered (``epoch``, ``seq``): the publisher's
        own process shows it at that place.  Called once at a time, unless the broker says
        :attr:`messages_in_call_order`."""

    # -- numbered room events, for resume (docs/brokers.md: "Room history") ----------------

    async def room_position(self, room_id: str) -> tuple[str, int] | None:
        """(epoch, last event number) of ``room_id``; None: this broker numbers no events
        (frames then carry no ``seq`` and nobody resumes).  A broker that numbers events
        gives every message, presence transition and change of a present member an
        ``epoch`` and ``seq`` (one more than the room's previous event), the same at every
        instance, and delivers each room's events in that order."""
        return None

    async def room_history(self, room_id: str, epoch: str, after: int) -> RoomHistory | None:
        """The events of ``room_id`` numbered after ``after`` in ``epoch``, when the history
        still holds every one of them; None when it cannot (another epoch, history too
        short or expired, ``after`` beyond the last event, or no history kept)."""
        return None

    async def publish_password_set(self, event: PasswordSet) -> None:
        """Deliver ``event`` to every other instance's ``on_password_set``.

        Not abstract, so a broker plugin written before it still loads; without it a new
        password closes the user's older-token sockets on the process that set it only,
        and svc says so in one line at start (those elsewhere close when their tokens
        expire).  The built-in brokers all carry it."""
        raise NotImplementedError

    # -- presence -------------------------------------------------------------

    @abc.abstractmethod
    async def presence_join(self, room_id: str, user_id: str) -> None:
        """This instance holds one more connection of ``user_id`` in ``room_id``."""

    @abc.abstractmethod
    async def presence_leave(self, room_id: str, user_id: str) -> None:
        """This instance holds one connection fewer (a no-op if it holds none)."""

    @abc.abstractmethod
    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Up to ``limit`` ids present in ``room_id`` service-wide, in id order, after ``after``."""

    @abc.abstractmethod
    async def presence_count(self, room_id: str) -> int:
        """How many users are present in ``room_id`` service-wide."""
