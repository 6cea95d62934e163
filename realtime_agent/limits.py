"""Abuse limits, pure: a token bucket per connection and socket counts per process."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` frames per second on average, bursts of up to ``burst``."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Spend one token at time ``now`` (seconds); ``False`` when none is left."""
        if self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(slots=True)
class SocketCounts:
    """Open sockets of this process, per session and per client address."""

    per_session: int
    per_address: int
    sessions: Counter[str] = field(default_factory=Counter)
    addresses: Counter[str] = field(default_factory=Counter)
    #: Set whenever no socket is open (a shutdown waits for it).
    none_open: asyncio.Event = field(default_factory=asyncio.Event)
    #: A shutdown has begun: new sockets are refused.
    draining: bool = False
    #: The shutdown has closed every socket: one still joining then closes once joined.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.none_open.set()  # nothing is open yet

    @property
    def open(self) -> int:
        """Sockets admitted and not yet released."""
        return sum(self.sessions.values())

    def admit(self, session_id: str, address: str) -> str | None:
        """Count a new socket, or say why it may not open."""
        if self.draining:
            return "the server is shutting down; connect to another one"
        if self.sessions[session_id] >= self.per_session:
            return f"this session has {self.per_session} open sockets already"
        if self.addresses[address] >= self.per_address:
            return f"your address has {self.per_address} open sockets already"
        self.sessions[session_id] += 1
        self.addresses[address] += 1
        self.none_open.clear()
        return None

    def release(self, session_id: str, address: str) -> None:
        for counts, key in ((self.sessions, session_id), (self.addresses, address)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
        if not self.sessions:
            self.none_open.set()
