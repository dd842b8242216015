"""Moved to :mod:`svc.serialize` (issue 26: in aiohttp, views are handlers).

Only until svc/rooms imports svc.serialize (its helper reshapes rooms at the same time):
delete this module then.  Not public: no third party imports it.
"""

from .serialize import Member, ProfilelessMember, member_json, member_records, user_json

__all__ = ["Member", "ProfilelessMember", "member_json", "member_records", "user_json"]
