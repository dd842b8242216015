"""svc: user profiles over HTTP, with real-time profile changes over WebSocket rooms.

The behaviour clients, operators and plugin authors rely on is ``docs/api.md``.
"""

__version__ = "0.1.0"
