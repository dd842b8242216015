"""Conformance suites a plugin author subclasses with one fixture (fsspec's ``tests/abstract``).

``StorageConformance`` for a storage backend, ``BrokerConformance`` for a broker.
"""

from ..deadline import deadline
from .broker import BrokerConformance
from .helpers import raises, reopener, unique_id, wait_until, within
from .storage import StorageConformance

__all__ = [
    "BrokerConformance",
    "StorageConformance",
    "deadline",
    "raises",
    "reopener",
    "unique_id",
    "wait_until",
    "within",
]
