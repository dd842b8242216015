"""SEND_BUFFER_BUDGET's low watermark: past the budget, the slowest sockets are closed until
the sum is a sixteenth under it, so a crowd of slow readers does not have every noted socket
re-read at each write (svc/rooms/send_budget.py).  The sockets here are the budget's view of
one (bytes waiting, closed or not); the budget over real sockets is
tests/test_abuse_ws_memory.py's."""

from __future__ import annotations

from svc.rooms.limits import RoomSettings
from svc.rooms.send_budget import SendBudget

BUDGET = 1024 * 1024


class Backlog:
    """A socket that never reads: what is written to it stays, until it is aborted."""

    def __init__(self) -> None:
        self.waiting = 0
        self.closed = False
        self.reads = 0

    def unsent(self) -> int:
        self.reads += 1
        return self.waiting

    def abort(self) -> None:
        self.waiting = 0

    def close(self, code: int, reason: str) -> None:
        self.closed = True


def flood(sockets: int, frames: int, frame: int) -> tuple[SendBudget, list[Backlog], int]:
    """``frames`` frames of ``frame`` bytes to each of ``sockets`` stalled sockets, each
    noted as the fan-out notes them; the most bytes the budget counted after a write."""
    budget = SendBudget(RoomSettings(send_buffer_budget=BUDGET))
    crowd = [Backlog() for _ in range(sockets)]
    highest = 0
    for _ in range(frames):
        for conn in crowd:
            if conn.closed:
                continue
            conn.waiting += frame
            budget.note(conn, conn.waiting)
            highest = max(highest, budget.total)
    return budget, crowd, highest


def test_a_crowd_of_slow_readers_is_not_re_read_at_every_write():
    budget, crowd, highest = flood(sockets=500, frames=40, frame=4096)
    reads = sum(conn.reads for conn in crowd)
    # Without the watermark, once the budget was full, nearly every write re-read every
    # noted socket: 128,702 reads here (16,249 with it); at most 20,000 writes were made.
    assert reads < 40_000, reads
    assert any(conn.closed for conn in crowd)
    # The bound still holds: what is counted after any write is the budget and one frame.
    assert highest <= BUDGET + 4096


def test_after_closing_the_sum_is_a_sixteenth_under_the_budget():
    budget = SendBudget(RoomSettings(send_buffer_budget=BUDGET))
    crowd = [Backlog() for _ in range(250)]
    for conn in crowd:
        conn.waiting = 4096
        budget.note(conn, conn.waiting)
    assert not any(conn.closed for conn in crowd)  # 1,024,000 bytes: under the budget
    crowd[7].waiting += 30_000  # the slowest passes it by 5,424 bytes
    budget.note(crowd[7], crowd[7].waiting)
    closed = [conn for conn in crowd if conn.closed]
    assert crowd[7] in closed  # the slowest first
    # Closing it alone would have been enough to get under the budget, not 1/16 under it.
    assert len(closed) == 10
    assert sum(conn.waiting for conn in crowd if not conn.closed) <= BUDGET - BUDGET // 16
