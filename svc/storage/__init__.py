"""Storage: the user store interface plugins implement, its records and its errors.

Third parties import from here; these names stay where they are.
"""

from .base import Storage
from .errors import Conflict, Misconfigured, NotFound, StorageError, Unavailable, VersionMismatch
from .models import PROFILE_FIELDS, Credentials, User, frozen_profile, username_key

__all__ = [
    "PROFILE_FIELDS",
    "Conflict",
    "Credentials",
    "Misconfigured",
    "NotFound",
    "Storage",
    "StorageError",
    "Unavailable",
    "User",
    "VersionMismatch",
    "frozen_profile",
    "username_key",
]
