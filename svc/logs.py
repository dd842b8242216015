"""Logging: ``LOG_FORMAT=text|json`` to stderr, with the request id of the request being served.

JSON is one object per line: ``time``, ``level``, ``logger``, ``message``,
``request_id`` inside a request, any ``extra`` fields a call passes (the
access log's ``method``, ``path``, ``status``...), and ``exc`` for a traceback.
Nothing secret is ever passed to a log call: paths are logged without their
query string (a WebSocket's ``?token=`` lives there), and URLs only redacted.

No client can write a line of its own, or drive the operator's terminal: text
a client sent (a path decoded from ``%0d%0a``, a header, an exception quoting
either) reaches log calls as arguments, so both formats escape control
characters in the whole line, message, arguments and fields alike
(:func:`escape_controls`: C0 and C1 controls, DEL, the Unicode line and
paragraph separators, bidirectional overrides).  JSON does it by its own
escaping (``ensure_ascii``).  A traceback in the text format keeps its own
lines, each indented, so no line of the log that starts at column 0 is
anything but the start of a record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
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


#: What a terminal or a log reader may act on: C0 and C1 controls, DEL, U+2028/2029 (line
#: and paragraph separators), and the bidirectional overrides that reorder what is shown.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\r``, ``\\x1b``,
    ``\\u2028``): printable, and on one line."""
    return _CONTROLS.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, every record one line with its control characters escaped; a
    traceback follows on lines of its own, indented (see the module)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            # splitlines() also breaks at \r, \x0b, \x1c-\x1e, NEL, U+2028: a piece is
            # indented whatever broke it.
            for piece in (block or "").splitlines():
                line += "\n    " + escape_controls(piece)
        return line


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
        if record.exc_info or record.exc_text:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        # ensure_ascii (the default, kept on purpose): every control character, C1 and
        # U+2028/2029 included, is written as an escape, so one record is one line.
        return json.dumps(entry, default=str, ensure_ascii=True)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every log line to stderr in ``log_format``; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
