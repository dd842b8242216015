"""What every pub/sub broker shares, written once: the wire format, the ordered publisher,
delivery shielded from a failing listener, and a node skipping its own echo.

A pub/sub broker (Postgres ``LISTEN``/``NOTIFY``, Redis ``PUBLISH``/``SUBSCRIBE``)
subclasses :class:`PubSubBroker` and keeps only its transport: how a payload is
published, how payloads are heard, presence.  As in python-socketio's
``AsyncPubSubManager``, the rest is here:

- **The wire format** (:func:`encode_change`, :func:`encode_message`,
  :func:`encode_presence`, :func:`decode`): one JSON object per event.

  - ``{"t": "c", "id", "v", "n", "d"?, "u"?}``: a change; ``u`` is the record
    ``{"p": profile, "c": created, "m": updated}``, left out when the payload would pass
    the transport's limit (the hub then reads the record from storage).  ``id`` comes
    first, so a reader can tell whose change it is from the payload's first bytes.
  - ``{"t": "m", "n", "r", "f", "d", "s"?}``: a room message (``d``: its JSON text;
    ``s``: a sequence number, where a transport folds equal payloads into one).
  - ``{"t": "p", "r", "u", "p", "n"?, "s"?}``: a presence transition; ``n`` and ``s``
    let the node that caused it recognise its own.

  ``e`` and ``q``: where the broker numbers room events, the room's epoch and the event's
  number (for a change, ``q`` is ``{room: [epoch, seq]}``), added by the broker on its way.

  ``n`` is the publishing node.  A transport that carries kinds on separate channels
  (Postgres) may leave ``t`` to the channel.  The Postgres broker's earlier change
  payload (``"p"``, ``"c"``, ``"u"`` at the top level) is still read: see
  docs/brokers.md, "Mixed versions".

- **The ordered publisher** (:class:`OneInFlight`): one write in flight, everything
  handed over meanwhile in the next one, so a burst costs a few round trips and every
  node receives a node's events in the order it published them.
- **Shielded delivery** (:func:`deliver`): a listener that raises is reported to the
  loop's exception handler; delivery goes on.
- **Skipping its own** (:meth:`PubSubBroker.dispatch`): a node's own room messages (its
  hub has them already) and, where the broker hands its own changes to its hub at
  publish time, their echo.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Generic, TypeVar

from ..storage.models import PROFILE_FIELDS, User
from .base import Broker, BrokerListener, BrokerUnavailable, Change, PresenceChange, RoomMessage

__all__ = [
    "Event",
    "OneInFlight",
    "PubSubBroker",
    "decode",
    "deliver",
    "encode_change",
    "encode_message",
    "encode_presence",
    "load",
]

# -- the wire format ------------------------------------------------------------------------

# ASCII, so len() is the size in bytes (Postgres measures a NOTIFY payload in bytes, in
# whatever encoding the server has), and compact.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def encode_change(node: str, change: Change, limit: int) -> str:
    """``change`` as a payload of at most ``limit`` bytes: the record rides along when it
    fits, else only id and version travel."""
    head = f'{{"t":"c","id":{_dumps(change.user_id)},"v":{change.version},"n":{_dumps(node)}'
    if change.deleted:
        return head + ',"d":1}'
    user = change.user
    if user is None:
        return head + "}"
    record = _dumps(
        {
            "p": {name: user.profile.get(name) for name in PROFILE_FIELDS},
            "c": user.created_at.isoformat(),
            "m": user.updated_at.isoformat(),
        }
    )
    payload = f'{head},"u":{record}}}'
    return payload if len(payload) <= limit else head + "}"


#: How every change payload starts (encode_change): the user id follows.
_CHANGE_PREFIX = '{"t":"c","id":"'
_CHANGE_PREFIX_BYTES = _CHANGE_PREFIX.encode()
_PREFIX_LENGTH = len(_CHANGE_PREFIX)


def encode_message(node: str, message: RoomMessage, seq: int | None = None) -> str:
    event = {"t": "m", "n": node, "r": message.room_id, "f": message.sender, "d": message.data}
    if seq is not None:
        event["s"] = seq
    return _dumps(event)


def encode_presence(node: str, seq: int, change: PresenceChange) -> str:
    room, user = change.room_id, change.user_id
    return _dumps({"t": "p", "r": room, "u": user, "p": change.present, "n": node, "s": seq})


@dataclass(frozen=True)
class Event:
    node: str | None
    item: Change | RoomMessage | PresenceChange
    #: the sequence number of a presence transition a node announced itself
    seq: int | None = None


def load(payload: str | bytes) -> dict:
    """The JSON object of a payload; ValueError if it is not one."""
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("not an svc event (not an object)")
    return data


def decode(payload: str | bytes | dict, kind: str | None = None) -> Event:
    """One event; ValueError if it is not one of ours (another program on the channel, or a
    svc version that speaks differently).  ``kind``: the event type when the channel says
    it (a payload's own ``t`` wins)."""
    try:
        data = payload if isinstance(payload, dict) else load(payload)
        return _decode(data, data.get("t", kind))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an svc event ({exc!r})") from None


def _decode(data: dict, kind) -> Event:
    node = _text(data.get("n", ""))
    if kind == "c":
        user_id, version = _text(data["id"]), _version(data["v"])
        record = data.get("u")
        if isinstance(record, str):  # the Postgres broker's earlier payload (see above)
            record = {"p": data["p"], "c": data["c"], "m": record}
        user = None
        if record is not None and not data.get("d"):
            profile = record["p"]
            user = User(
                id=user_id,
                profile={name: profile.get(name) for name in PROFILE_FIELDS},
                version=version,
                created_at=_utc(_text(record["c"])),
                updated_at=_utc(_text(record["m"])),
            )
        seqs = _room_numbers(data.get("q"))
        return Event(node, Change(user_id, version, user, bool(data.get("d")), seqs))
    epoch, number = _numbered(data)
    if kind == "m":
        message = RoomMessage(_text(data["r"]), _text(data["f"]), _text(data["d"]), epoch, number)
        return Event(node, message)
    if kind == "p":
        seq = data.get("s")
        room, user, present = _text(data["r"]), _text(data["u"]), data["p"] is True
        change = PresenceChange(room, user, present, epoch, number)
        return Event(node, change, seq if isinstance(seq, int) else None)
    raise ValueError(f"unknown event type {kind!r}")


def _numbered(data: dict) -> tuple[str | None, int | None]:
    epoch, seq = data.get("e"), data.get("q")
    if isinstance(epoch, str) and isinstance(seq, int) and not isinstance(seq, bool):
        return epoch, seq
    return None, None


def _room_numbers(value) -> dict[str, tuple[str, int]] | None:
    if not isinstance(value, dict):
        return None
    return {
        _text(room): (_text(pair[0]), _version(pair[1]))
        for room, pair in value.items()
        if isinstance(pair, list) and len(pair) == 2
    }


def _text(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _version(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a version, got {value!r}")
    return value


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


# -- the ordered publisher ------------------------------------------------------------------

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Writes one batch; returns each item's result, in order (or None: every result is None).
Write = Callable[[list[Item]], Awaitable[Sequence[Result] | None]]


class _Batch(Generic[Item, Result]):
    __slots__ = ("items", "done")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.done: asyncio.Future[Sequence[Result] | None] = (
            asyncio.get_running_loop().create_future()
        )


class OneInFlight(Generic[Item, Result]):
    """One write in flight at a time: what is handed over meanwhile goes in the next batch.

    Batches leave in the order their items were handed over.  Each caller waits for the
    batch that carries its item and gets that item's own result; when the write fails,
    every caller of the batch gets the same error, and when the writer is cancelled (the
    broker closing), nobody waits forever."""

    def __init__(self, write: Write, name: str, most: int | None = None):
        self._write = write
        self._name = name  # the writer task's, as asyncio and py-spy show it
        #: items per batch, at most (None: no limit)
        self._most = most
        self._waiting: deque[_Batch[Item, Result]] = deque()
        self._writing: asyncio.Task | None = None

    async def add(self, item: Item) -> Result | None:
        """Write ``item`` with whatever else is waiting; its result once written."""
        waiting = self._waiting
        if not waiting or (self._most is not None and len(waiting[-1].items) >= self._most):
            waiting.append(_Batch())
        batch = waiting[-1]
        index = len(batch.items)
        batch.items.append(item)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name=self._name)
        # Shielded: a caller that gives up must not cancel the others' statement.
        results = await asyncio.shield(batch.done)
        return None if results is None else results[index]

    async def drain(self) -> None:
        """Wait until everything handed over has been written (or has failed)."""
        if self._writing is not None:
            await asyncio.gather(asyncio.shield(self._writing), return_exceptions=True)

    async def cancel(self, timeout: float) -> None:
        """Stop writing: what is in flight and what waits fails with BrokerUnavailable."""
        writing = self._writing
        if writing is not None:
            writing.cancel()
            await asyncio.wait([writing], timeout=timeout)

    async def _write_all(self) -> None:
        batch = None
        try:
            while self._waiting:
                batch = self._waiting.popleft()
                try:
                    results = await self._write(batch.items)
                except Exception as exc:  # noqa: BLE001 - every caller of the batch hears it
                    _fail(batch, exc)
                else:
                    batch.done.set_result(results)
        finally:
            self._writing = None
            for unwritten in (batch, *self._waiting):  # cancelled: nobody may wait forever
                if unwritten is not None and not unwritten.done.done():
                    _fail(unwritten, BrokerUnavailable("the broker closed before writing this"))
            self._waiting.clear()


def _fail(batch: _Batch, exc: BaseException) -> None:
    batch.done.set_exception(exc)
    batch.done.exception()  # retrieved: its callers may have gone


# -- delivery -------------------------------------------------------------------------------


def deliver(listener: BrokerListener | None, call: Callable[[BrokerListener], None]) -> None:
    """``call(listener)``, shielded: a listener that raises must not end delivery (nor starve
    the other listeners of a bus); the loop's exception handler reports it."""
    if listener is None:
        return
    try:
        call(listener)
    except Exception as exc:  # noqa: BLE001 - one bad event must not end delivery
        asyncio.get_running_loop().call_exception_handler(
            {"message": "broker listener failed", "exception": exc}
        )


class PubSubBroker(Broker):
    """A broker over a pub/sub transport: subclasses publish and listen, and hand every
    event they hear to :meth:`dispatch`."""

    #: True where the broker hands its own changes to its listener when they are published
    #: (no round trip): their echo is then dropped.  False: they come back from the channel
    #: like everyone's, in the channel's order.
    changes_delivered_at_publish = False

    def __init__(self, url: str):
        super().__init__(url)
        #: This instance's name on the channel; set by the subclass (readable by an operator).
        self.node_id = ""
        #: Whom events are delivered to, while open.
        self.listener: BrokerListener | None = None

    def deliver(self, call: Callable[[BrokerListener], None]) -> None:
        deliver(self.listener, call)

    def unwanted(self, payload: str | bytes) -> bool:
        """True for a change whose user no member here has (the listener's
        ``wants_change``), told from the payload's first bytes, before decoding it: with
        several processes every one of them hears every change, and decoding one (its
        record, two timestamps) costs more than the rest of its way to a hub that drops it.
        Measured against decoding everything: CPU per PUT at WORKERS=2 (Postgres storage,
        Redis broker) 0.93 and 0.83 of it in two runs, about 12 % less (bench/README.md,
        "House, second cut (issue 26): brokers")."""
        wants = getattr(self.listener, "wants_change", None)
        if wants is None:
            return False
        if isinstance(payload, bytes):
            if not payload.startswith(_CHANGE_PREFIX_BYTES):
                return False
            end = payload.find(b'"', _PREFIX_LENGTH)
            user_id = payload[_PREFIX_LENGTH:end].decode("ascii", "replace")
        else:
            if not payload.startswith(_CHANGE_PREFIX):
                return False
            end = payload.find('"', _PREFIX_LENGTH)
            user_id = payload[_PREFIX_LENGTH:end]
        # An id with an escape in it (a quote, a backslash, non-ASCII) is decoded in full.
        if end < 0 or "\\" in user_id or "\ufffd" in user_id:
            return False
        try:
            return not wants(user_id)
        except Exception:  # noqa: BLE001 - a listener's bug: deliver, and let on_change say it
            return False

    def dispatch(self, event: Event) -> None:
        """Hand a heard event to the listener, skipping this node's own echo."""
        item = event.item
        own = event.node == self.node_id
        if isinstance(item, Change):
            if not (own and self.changes_delivered_at_publish):
                self.deliver(lambda listener: listener.on_change(item))
        elif isinstance(item, RoomMessage):
            if not own:  # the publisher's own process delivered it locally already
                self.deliver(lambda listener: listener.on_message(item))
        else:
            self.heard_presence(event, own)

    def heard_presence(self, event: Event, own: bool) -> None:
        """A presence transition heard on the channel; a broker that waits for its own
        transitions' echo overrides this."""
        change = event.item
        self.deliver(lambda listener: listener.on_presence(change))
