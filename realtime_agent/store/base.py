"""The store contract: what the session service needs from a database.

Two backends implement it with the same behaviour and one contract test
suite: SQLite (embedded) and PostgreSQL (distributed).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..models import AutonomyLevel, Message, Session, SessionStatus

#: The columns both backends select, in the order their row readers expect.
SESSION_COLUMNS = (
    "id, character_id, autonomy_level, status, context, created_at, updated_at,"
    " pending_approval, viewer_generation"
)
MESSAGE_COLUMNS = (
    "id, session_id, position, role, content, timestamp, client_id, tool_calls,"
    " call_id, name, is_error, turn, priority, steered"
)


class Store(Protocol):
    """Durable sessions and their append-only transcript."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def create_session(self, session: Session) -> None:
        """Insert a new session."""

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or ``None`` when unknown or archived."""

    async def archive_session(self, session_id: str) -> bool:
        """Hide a session from every read path; ``False`` if it was not live."""

    async def append_message(self, message: Message) -> tuple[Message, bool]:
        """Append ``message`` once; idempotent on ``(session_id, client_id)``.

        Returns the stored message (with its ``position``) and whether it was
        created now; a repeated ``client_id`` returns the earlier message.
        """

    async def list_messages(self, session_id: str) -> list[Message]:
        """The transcript in arrival order (``position``)."""

    async def conversation(self, session_id: str) -> list[Message]:
        """Messages already taken by a run, in the order the model saw them."""

    async def take_next(self, session_id: str) -> Message | None:
        """Start the session's next turn with its next waiting user message.

        The message gets the new ``turn`` number; ``None`` when none waits (or
        the session is archived).
        """

    async def pending(self, session_id: str) -> list[Message]:
        """User messages waiting in the queue, next first."""

    async def sessions_needing_attention(self) -> list[str]:
        """Live sessions left running or with waiting messages (start-up recovery)."""

    async def reserve_seq(self, session_id: str, count: int) -> int:
        """Reserve ``count`` seq numbers; returns the highest number reserved before."""

    # Each setter writes one field (and ``updated_at``) of a live session and
    # returns the session as written, in the same statement; ``None`` (nothing
    # written) when no live session has that id.

    async def set_status(self, session_id: str, status: SessionStatus) -> Session | None:
        """Write only the status."""

    async def set_context(self, session_id: str, context: dict[str, Any]) -> Session | None:
        """Write only the session context."""

    async def set_autonomy(self, session_id: str, level: AutonomyLevel) -> Session | None:
        """Write only the autonomy level."""

    async def set_pending_approval(
        self, session_id: str, approval: dict[str, Any] | None
    ) -> Session | None:
        """Write (or clear, with ``None``) the tool calls waiting for the owner."""

    async def bump_viewer_generation(self, session_id: str) -> int:
        """Revoke every viewer token issued so far; returns the new generation."""

    async def current_turn(self, session_id: str) -> int:
        """The number of the turn taken last (the running one while a run is on)."""
