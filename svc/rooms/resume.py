"""Resume: a returning client's missed events, replayed from the broker's room history.

The seam, closed without locks: the connection is marked (:meth:`Room.mark`) *before* the
history is read, at the room's current number ``A``.  From then on every live frame after
``A`` is held for it (its welcome is not sent yet: :meth:`Connection.start`), and the
history, read after ``A`` was applied here, holds every event up to ``A``: so the replay is
the history's events after the client's ``seq`` up to ``A``, and the held live frames follow.
Nothing is missed and nothing comes twice, however fast the room is written.

What the replay shows is what a connection that had stayed would have seen, event by event,
with two differences, both documented (docs/resume.md):

- consecutive presence transitions go out as one frame (as the live room coalesces them),
  with the records as they are now, and with the current member count;
- the returning user's own leave and return (its last socket closed, then this one opened)
  are left out: a joiner is never told of its own arrival, and the client knows it left;
  its own record as it is now follows the replay instead (without ``seq``: while away it
  was in no room, so its own changes were no room's events).

A change older than a record already shown in the replay is skipped (a record is whole).
"""

from __future__ import annotations

import asyncio
import re

from ..broker import Change, PresenceChange, RoomMessage
from ..storage import User
from . import frames
from .connection import Connection
from .history_reads import HistoryReads
from .room import Room, presence_frame

__all__ = ["parse_since", "resumed_welcome"]

#: ``<epoch>:<seq>``: an epoch is what a broker names a history (printable, no spaces).
_SINCE = re.compile(r"([!-~]{1,64}):(0|[1-9][0-9]{0,15})")


def parse_since(text: str | None) -> tuple[str, int] | None:
    """(epoch, seq) of a ``since`` value; None for a missing or malformed one."""
    if text is None:
        return None
    match = _SINCE.fullmatch(text)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


async def resumed_welcome(
    room: Room, conn: Connection, since: tuple[str, int], reads: HistoryReads, read
) -> bytes | None:
    """The welcome and replay of a resumed connection, or None: it cannot resume (the
    caller then answers with a normal welcome, ``resumed: false``)."""
    epoch, after = since
    current = room.seq
    if current is None or epoch != room.sequence.epoch or after > current:
        return None
    room.mark(conn)  # from here on, live frames after `current` are held for it
    replays = None
    if after == current:
        events = []
    else:
        # A read that starts after the mark, shared with the resumers marked meanwhile.
        shared = await reads.read(room.id, epoch, after)
        history, replays = shared.history, shared.replays
        if history is None or history.epoch != epoch or history.seq < current:
            conn.hold_again()
            return None
        events = shared.span(current)
    if room.sequence.epoch != epoch:
        conn.hold_again()
        return None  # the broker lost the history while we read it
    if replays is None or _concerns(events, conn.user_id):
        replay, shown = await _replay(room, conn.user_id, events, read)
    else:
        replay, shown = await _shared_replay(replays, (after, current), room, events, read)
    conn.welcomed = dict(shown)  # held live changes the replay showed already are dropped
    head = room.welcome_head(conn)
    head["seq"], head["resumed"] = after, True
    return frames.encode(head) + b"".join(replay)


def _concerns(events, own: str | None) -> bool:
    """Whether the replay of ``events`` depends on who asks: its user's own presence is in
    the span (left out for it, and its record follows)."""
    return own is not None and any(
        isinstance(event, PresenceChange) and event.user_id == own for _, event in events
    )


async def _shared_replay(replays: dict, key, room: Room, events, read):
    """The replay for ``key`` (since, mark), built by the first sharer that needs it: after a
    drop most sharers missed the same events, and building their frames was most of what a
    resume cost.  Only for replays that do not depend on who asks (:func:`_concerns`)."""
    built = replays.get(key)
    if built is None:
        if not _wanted(events, None):
            # Nothing to read (messages, changes that carry their record, leaves): built
            # here and now, and the sharers after this one take it as it is.
            built = replays[key] = _frames(room, None, events, {})
            return built
        # A task of its own: a sharer that gives up (its socket closed) stops no other.
        built = replays[key] = asyncio.ensure_future(_replay(room, None, events, read))
        built.add_done_callback(_retrieved)
    if isinstance(built, tuple):
        return built
    return await asyncio.shield(built)


def _retrieved(built: asyncio.Future) -> None:
    if not built.cancelled():
        built.exception()  # each sharer hears it; none left may be waiting


def _wanted(events, own: str | None) -> list[str]:
    """The users whose records the replay of ``events`` shows and the events do not carry."""
    return [
        event.user_id
        for _, event in events
        if (isinstance(event, PresenceChange) and event.present and event.user_id != own)
        or (isinstance(event, Change) and event.user is None and not event.deleted)
    ]


async def _replay(room: Room, own: str | None, events, read):
    """The frames of the replay of ``events``, and the version of each user they show."""
    wanted = _wanted(events, own)
    # Its user left and came back in the span: while away it was present in no room, so a
    # change of its own profile made then was no room's event. Its record as it is now
    # stands for those changes (below), as a presence frame would for anyone else.
    if own is not None and _concerns(events, own):
        wanted.append(own)
    records = {}
    if wanted:
        records = {r.id: r for r in await read(list(dict.fromkeys(wanted)))}
    return _frames(room, own, events, records)


def _frames(room: Room, own: str | None, events, records: dict):
    """:func:`_replay`'s frames and versions shown, from ``records`` read for it."""
    came_back = own is not None and _concerns(events, own)
    shown: dict[str, int] = {}  # user → version shown in the replay
    out: list[bytes] = []
    news: dict[str, tuple[bool, int, int | None]] = {}
    count = len(room.members)
    with_email = room.with_email

    def flush_presence() -> None:
        if news:
            out.append(presence_frame(room.id, dict(news), records, count, with_email))
            news.clear()

    for seq, event in events:
        if isinstance(event, PresenceChange):
            if event.user_id == own:
                continue
            news.pop(event.user_id, None)
            news[event.user_id] = (event.present, seq, seq)
            record = records.get(event.user_id)
            if event.present and isinstance(record, User):
                shown[record.id] = max(shown.get(record.id, 0), record.version)
            continue
        if isinstance(event, RoomMessage):
            flush_presence()
            out.append(frames.message(room.id, event.sender, event.data, seq))
        elif isinstance(event, Change) and not event.deleted:
            user = event.user or records.get(event.user_id)
            if not isinstance(user, User) or shown.get(user.id, 0) >= user.version:
                continue
            flush_presence()
            shown[user.id] = user.version
            out.append(frames.profile_updated(room.id, user, with_email, seq))
    flush_presence()
    if came_back and isinstance(mine := records.get(own), User):
        if shown.get(own, 0) < mine.version:
            shown[own] = mine.version
            out.append(frames.profile_updated(room.id, mine, with_email))  # a repair: no seq
    return out, shown
