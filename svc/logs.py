"""Logging: ``LOG_FORMAT=text|json`` to stderr, with the request id of the request being served.

JSON is one object per line: ``time``, ``level``, ``logger``, ``message``,
``request_id`` inside a request, any ``extra`` fields a call passes (the
access log's ``method``, ``path``, ``status``...), and ``exc`` for a traceback.
Nothing secret is ever passed to a log call: paths are logged without their
query string (a WebSocket's ``?token=`` lives there), and URLs only redacted.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone

#: The id of the request being served, for every log line written while serving it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

#: LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every log line to stderr in ``log_format``; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
