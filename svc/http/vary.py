"""``Vary``: which request headers an answer depends on, for caches between svc and clients."""

from __future__ import annotations

from aiohttp import hdrs
from multidict import CIMultiDict


def add_vary(headers: CIMultiDict, name: str) -> None:
    """Add ``name`` to ``Vary`` unless it is there already (in any of its values)."""
    present = {
        token.strip().lower()
        for value in headers.getall(hdrs.VARY, ())
        for token in value.split(",")
    }
    if name.lower() not in present and "*" not in present:
        headers.add(hdrs.VARY, name)
