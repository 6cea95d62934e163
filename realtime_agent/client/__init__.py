"""The websocket CLI client: ``realtime-agent chat`` and ``realtime-agent watch``."""
