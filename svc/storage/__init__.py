"""Storage: the backend interface (``base``) and the scheme → plugin registry (``registry``)."""

from .base import (
    PROFILE_FIELDS,
    Change,
    Conflict,
    Credentials,
    NotFound,
    Storage,
    StorageError,
    Unavailable,
    User,
    VersionMismatch,
)

__all__ = [
    "PROFILE_FIELDS",
    "Change",
    "Conflict",
    "Credentials",
    "NotFound",
    "Storage",
    "StorageError",
    "Unavailable",
    "User",
    "VersionMismatch",
]
