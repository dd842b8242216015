"""The rooms' limits, in one place (a leaf: it imports nothing of svc, so http and the
settings may read it without importing the rooms)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RoomSettings:
    """The rooms' limits (tests lower some of them)."""

    #: Bytes a connection may have waiting to be sent before it is closed with 1013.
    max_backlog: int = 256 * 1024
    #: Seconds of silence before a ping; a peer that does not answer within half of it is
    #: dropped (svc.rooms.connection.beat_forever: one sweep for every socket).
    heartbeat: float = 30.0
    #: Client frames per second, and the burst allowed above it.
    frame_rate: float = 50.0
    frame_burst: float = 100.0
    #: Refused frames in a row that end the connection (1008).
    flood_strikes: int = 100
    #: Members listed in a welcome; GET /rooms/{room_id}/members pages the rest.
    welcome_members: int = 100
    #: Presence changes within this window go out as one frame (the contract: at most 100 ms).
    presence_window: float = 0.05
    #: Largest serialised ``data`` of a client message.
    max_message_data: int = 8 * 1024
    #: Largest client frame; aiohttp closes a bigger one with 1009.
    max_frame_bytes: int = 64 * 1024
    #: Seconds between re-reads of what the rooms hosted here care about (see Hub.reconcile).
    reconcile_every: float = 15.0
    #: How long a closing handshake may take before the socket is dropped.
    close_timeout: float = 5.0
    #: WebSockets one user may hold open here (MAX_SOCKETS_PER_USER); the next gets 4429.
    max_sockets_per_user: int = 32
    #: Bytes waiting for all slow sockets together (SEND_BUFFER_BUDGET); past it the ones
    #: with the most waiting are closed with 1013 (send_budget.py).
    send_buffer_budget: int = 256 * 1024 * 1024


@dataclass
class RoomStats:
    """What the rooms count for ``/metrics``: plain ints, bumped where the work happens."""

    #: frames written to sockets (one event to a room of n sockets counts n)
    frames_sent: int = 0
    #: sockets closed with 1013 (backlog full) and 1008 (flooding)
    closed_backlog: int = 0
    closed_flood: int = 0
    #: sockets closed with 1013 because all slow sockets together passed SEND_BUFFER_BUDGET
    closed_budget: int = 0
    #: sockets closed with 4429: their user had MAX_SOCKETS_PER_USER open here
    closed_per_user: int = 0
    #: sockets closed with 4401: a token expired, or the user set a new password since
    #: the login token was issued
    closed_token_expired: int = 0
    closed_password_set: int = 0
    #: presence frames sent (one per room per window)
    presence_batches: int = 0
    #: welcomes that asked to resume (``?since=``) and did, or could not
    resumed: int = 0
    not_resumed: int = 0
    # churn and left are svc.collector's inputs and nothing else's: they cost an int
    # increment per join and leave (no bench figure sees them), and tell it when a burst in
    # which sockets left is over (one full collection then; its figure is in collector.py).
    #: sockets that joined plus sockets that left, ever (svc.collector: is a burst over?)
    churn: int = 0
    #: sockets that left, ever (svc.collector: did a burst leave garbage behind?)
    left: int = 0
