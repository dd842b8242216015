"""What the rooms count for ``/metrics``: plain ints, bumped where the work happens."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RoomStats:
    #: frames written to sockets (one event to a room of n sockets counts n)
    frames_sent: int = 0
    #: sockets closed with 1013 (backlog full) and 1008 (flooding)
    closed_backlog: int = 0
    closed_flood: int = 0
    #: sockets closed with 1013 because all slow sockets together passed SEND_BUFFER_BUDGET
    closed_budget: int = 0
    #: sockets closed with 4429: their user had MAX_SOCKETS_PER_USER open here
    closed_per_user: int = 0
    #: presence frames sent (one per room per window)
    presence_batches: int = 0
    #: sockets that joined plus sockets that left, ever (svc.heap_trim: is a burst over?)
    churn: int = 0
    #: sockets that left, ever (svc.heap_trim: did a burst leave garbage behind?)
    left: int = 0
