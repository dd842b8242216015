"""A room's members: a set that remembers its first ids in order, for the welcome.

Every welcome lists the ``k`` smallest ids of the room.  ``heapq.nsmallest`` over a
room of thousands, once per join, was ~10 % of a 2,000-socket join burst; most joins
and leaves do not touch the first ``k`` ids, so they are kept until one does.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable


class MemberSet(set):
    """``set[str]``; :meth:`first` is cached.  ``add`` keeps it up to date (a joiner
    among the first ids is inserted), ``discard`` keeps it when it cannot change it; every
    other change to the set forgets it.  A changed first list is always a new list."""

    __slots__ = ("_first", "_k")

    def __init__(self, items: Iterable[str] = ()):
        super().__init__(items)
        self._first: list[str] | None = None
        self._k = 0

    def first(self, k: int) -> list[str]:
        """The ``k`` smallest ids, in order (shared: do not change the list)."""
        if self._first is None or self._k != k:
            self._first, self._k = heapq.nsmallest(k, self), k
        return self._first

    def add(self, item: str) -> None:
        first = self._first
        if first is not None and item not in self:
            if len(first) < self._k or item < first[-1]:
                # A new list, not an edit: whoever holds the old one (WelcomeCache) can tell.
                first = first.copy()
                bisect.insort(first, item)
                del first[self._k :]
                self._first = first
        super().add(item)

    def discard(self, item: str) -> None:
        first = self._first
        if first is not None and item in self and item <= first[-1]:
            self._first = None
        super().discard(item)

    def remove(self, item: str) -> None:
        if item not in self:
            raise KeyError(item)
        self.discard(item)

    def _forget(self) -> None:
        self._first = None

    def update(self, *others) -> None:
        self._forget()
        super().update(*others)

    def clear(self) -> None:
        self._forget()
        super().clear()

    def pop(self) -> str:
        self._forget()
        return super().pop()

    def difference_update(self, *others) -> None:
        self._forget()
        super().difference_update(*others)

    def intersection_update(self, *others) -> None:
        self._forget()
        super().intersection_update(*others)

    def symmetric_difference_update(self, other) -> None:
        self._forget()
        super().symmetric_difference_update(other)

    def __ior__(self, other):
        self._forget()
        return super().__ior__(other)

    def __iand__(self, other):
        self._forget()
        return super().__iand__(other)

    def __isub__(self, other):
        self._forget()
        return super().__isub__(other)

    def __ixor__(self, other):
        self._forget()
        return super().__ixor__(other)
