"""RFC 6455 framing of a server text message, done once per event.

A server frame is unmasked, so the bytes of an event's frame are the same for
every socket that receives it (without permessage-deflate): the fan-out path
builds them once, with the websockets library's own serialisation, and
writes them to each socket's transport as they are.
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode


def text_frame(text: str) -> bytes:
    """The complete, unfragmented, unmasked text frame carrying ``text``."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
