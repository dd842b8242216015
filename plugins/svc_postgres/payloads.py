"""Where the Postgres broker's notifications travel, and how big they may be.

What they carry is every pub/sub broker's wire format (:mod:`svc.broker.pubsub`); the
channel says the kind.  A NOTIFY payload must stay under 8000 bytes, so:

- a change carries the whole record when it fits under :data:`PAYLOAD_LIMIT`,
  else only id and version (the listener reads the record from storage);
- a message is inline when it fits, else its payload is stored in
  ``svc_messages`` and only the row's id travels (``{"n", "i"}``, made by the
  SQL function ``svc_message_put``), read back by every receiver.
"""

from __future__ import annotations

#: Committed user changes (the channel name the old trigger used, so it stays stable).
CHANGES = "svc_users"
#: Room messages between processes.
MESSAGES = "svc_messages"
#: A NOTIFY payload must stay under 8000 bytes; keep a margin.
PAYLOAD_LIMIT = 7900
