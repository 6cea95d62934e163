"""realtime-agent: a websocket-first realtime server for live AI-agent sessions."""

__version__ = "0.1.0"
