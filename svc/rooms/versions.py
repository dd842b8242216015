"""Which version of each user the rooms have shown: profile events go out in version order."""

from __future__ import annotations


def moves_forward(last: tuple[int, bool] | None, version: int, deleted: bool) -> bool:
    """Whether a change at ``version`` (a deletion if ``deleted``) is news to a listener
    whose last seen state of the user is ``last``, a (version, deleted) pair or None.

    Older or equal versions are stale, except that after a deletion the id may be
    created again, starting over at version 1.
    """
    return last is None or version > last[0] or (last[1] and not deleted)


class VersionBook:
    """user → (last version shown, deleted), for the users present in rooms here."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, bool]] = {}

    def is_new(self, user_id: str, version: int, deleted: bool) -> bool:
        """Whether the change moves the user forward; if so, remember it."""
        if not moves_forward(self._last.get(user_id), version, deleted):
            return False
        self._last[user_id] = (version, deleted)
        return True

    def last(self, user_id: str) -> tuple[int, bool] | None:
        """(last version shown, deleted), or None for a user not heard of."""
        return self._last.get(user_id)

    def knows(self, user_id: str) -> bool:
        return user_id in self._last

    def baseline(self, user_id: str, version: int) -> None:
        """What a re-read found for a user never heard of: the rooms showed it already."""
        self._last.setdefault(user_id, (version, False))

    def deleted(self, user_id: str) -> bool:
        """A re-read found no such user: True if that is news (we knew it as existing)."""
        last = self._last.get(user_id)
        if last is not None and not last[1]:
            self._last[user_id] = (last[0] + 1, True)
            return True
        return False

    def forget(self, user_id: str) -> None:
        self._last.pop(user_id, None)
