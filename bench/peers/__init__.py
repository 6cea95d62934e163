"""The servers realtime-agent is compared with, doing the same fan-out.

- ``socketio_server``: python-socketio (ASGI, on uvicorn) with ``AsyncRedisManager``,
  the usual way to fan out across processes in Python.
- ``bare_server``: a plain Starlette websocket app on uvicorn that sends each
  chunk with one ``send_text`` per viewer, in a loop: the floor of the stack.

Both read the model through the official ``anthropic`` SDK from the bench's
stand-in, as realtime-agent does, and run uvicorn the way realtime-agent does
(``websockets-sansio``, no permessage-deflate, uvloop).
"""
