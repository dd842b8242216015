"""A room's members: a set of ids that remembers its first ids in order, for the welcome.

Every welcome lists the ``k`` smallest ids of the room.  ``heapq.nsmallest`` over a
room of thousands, once per join, was ~10 % of a 2,000-socket join burst; most joins
and leaves do not touch the first ``k`` ids, so they are kept until one does.

Earns its place (issue 26, re-measured side by side against a plain ``set`` with
``nsmallest`` per welcome and the welcome cache compared by value): connect 2,000 to one
room on memory, ``bench/run.sh connect``'s figure, 1.51 s [1.22-1.54] with it against
1.91 s [1.54-2.06] without, ratio **0.796** (3 alternated rounds, bench/README.md).

Only the room changes its members (``add``, ``discard``, ``update``), so this is a small
class around a set, not a ``set`` subclass that would have to forget its cache in every
one of set's mutators.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator


class MemberSet:
    """The ids present; :meth:`first` is cached.  ``add`` keeps it up to date (a joiner
    among the first ids is inserted), ``discard`` keeps it when it cannot change it,
    ``update`` forgets it.  A changed first list is always a new list."""

    __slots__ = ("_ids", "_first", "_k")

    def __init__(self, items: Iterable[str] = ()):
        self._ids: set[str] = set(items)
        self._first: list[str] | None = None
        self._k = 0

    def first(self, k: int) -> list[str]:
        """The ``k`` smallest ids, in order (shared: do not change the list)."""
        if self._first is None or self._k != k:
            self._first, self._k = heapq.nsmallest(k, self._ids), k
        return self._first

    def add(self, item: str) -> None:
        first = self._first
        if first is not None and item not in self._ids:
            if len(first) < self._k or item < first[-1]:
                # A new list, not an edit: whoever holds the old one (WelcomeCache) can tell.
                first = first.copy()
                bisect.insort(first, item)
                del first[self._k :]
                self._first = first
        self._ids.add(item)

    def discard(self, item: str) -> None:
        first = self._first
        if first is not None and item in self._ids and item <= first[-1]:
            self._first = None
        self._ids.discard(item)

    def update(self, items: Iterable[str]) -> None:
        self._first = None
        self._ids.update(items)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __sub__(self, other: Iterable[str]) -> set[str]:
        return self._ids.difference(other)
