"""The durable transcript: sessions and messages."""
