"""RFC 6455 framing of a server text message, done once per event.

A server frame is unmasked, so the bytes of an event's frame are the same for
every socket that receives it (without permessage-deflate): the fan-out path
builds them once and writes them to each socket's transport as they are.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81  # FIN bit + opcode 1 (text)


def text_frame(text: str) -> bytes:
    """The complete, unfragmented, unmasked text frame carrying ``text``."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, size) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, size) + payload
