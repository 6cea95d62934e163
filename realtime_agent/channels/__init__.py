"""The fan-out layer: seq, resume history, publish to every socket of a session."""
