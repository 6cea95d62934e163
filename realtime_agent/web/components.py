"""The components the lifespan builds, as handlers see them (``request.state.components``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..auth import TokenSigner
from ..channels.base import ChannelLayer
from ..config import Settings
from ..gcwatch import GcWatch
from ..limits import SocketCounts
from ..sessions import SessionService
from ..tools.registry import ToolRegistry


@dataclass(frozen=True, slots=True)
class Components:
    settings: Settings
    signer: TokenSigner
    sessions: SessionService
    tools: ToolRegistry
    model_name: str
    channels: ChannelLayer
    sockets: SocketCounts
    gc: GcWatch
