"""svc: user profiles over HTTP, with real-time profile changes over WebSocket rooms."""

__version__ = "0.1.0"
