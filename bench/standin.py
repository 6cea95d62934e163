"""The bench's stand-in for the Anthropic Messages API: timed chunks, little CPU.

``python -m bench.standin --port P`` serves ``POST /v1/messages`` on 127.0.0.1
in the SSE wire format the ``anthropic`` SDK parses (the same events as
``tests/standin_anthropic.py``: message_start, content_block_start, one
content_block_delta per chunk, content_block_stop, message_delta,
message_stop), over HTTP/1.1 keep-alive with chunked transfer encoding, on a
bare asyncio server so that it costs little CPU beside the server measured.

What to stream comes from the last user message of the request, so a
benchmark client decides it with the message it sends::

    bench chunks=200 rate=100 pad=0

``chunks`` text chunks (default 1), ``rate`` chunks per second (0 or absent:
as fast as possible, the zero-latency model), each chunk's text being
``<time.time_ns() when written>`` + ``pad`` dots + ``|``. The wall clock is
shared by every process of the machine, so a client that receives the text
computes the latency of each chunk from the model to itself, also when the
server merges several chunks into one delta (each one keeps its ``|``).
Chunks are scheduled on absolute times (start + i/rate), so a late wake-up
does not lower the rate: the chunks that are due go out at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from array import array
from typing import Any

import orjson

from .common import percentiles

PARAM = re.compile(r"\b(chunks|rate|pad)=([0-9.]+)")


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        parts = []
        for block in content or []:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "\n".join(parts)
    return ""


def params(body: dict[str, Any]) -> tuple[int, float, int]:
    found: dict[str, str] = {}
    for name, value in PARAM.findall(_last_user_text(body)):
        found[name] = value  # the last mention wins
    chunks = max(1, int(float(found.get("chunks", "1"))))
    rate = float(found.get("rate", "0"))
    pad = int(float(found.get("pad", "0")))
    return chunks, rate, pad


def _sse(event: str, data: dict[str, Any]) -> bytes:
    payload = b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _message(model: str, stop_reason: str | None, output_tokens: int = 0) -> dict[str, Any]:
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": output_tokens},
    }


_DELTA_HEAD = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
)
_DELTA_TAIL = b'"}}\n\n'


def _delta(text: bytes) -> bytes:
    payload = _DELTA_HEAD + text + _DELTA_TAIL
    return b"%x\r\n%b\r\n" % (len(payload), payload)


class StandIn:
    def __init__(self) -> None:
        self.streams = 0
        self.chunks = 0
        # How late each paced chunk was written, in µs after its scheduled time: a
        # server that reads the stream slowly makes the stand-in wait on its socket.
        self.late_us = array("q")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                raw = await reader.readexactly(length) if length else b""
                if method == "GET" and path.startswith("/stats"):  # and start over
                    body = orjson.dumps(self.stats())
                    self.late_us = array("q")
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%b" % (len(body), body)
                    )
                    await writer.drain()
                    continue
                if method == "GET" and path.startswith("/healthz"):
                    body = b'{"status":"ok"}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%b" % (len(body), body)
                    )
                    await writer.drain()
                    continue
                if method != "POST" or not path.startswith("/v1/messages"):
                    body = b'{"type":"error","error":{"type":"not_found_error","message":"no"}}'
                    writer.write(
                        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%b" % (len(body), body)
                    )
                    await writer.drain()
                    continue
                await self.answer(orjson.loads(raw), writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def stats(self) -> dict[str, Any]:
        """How late the paced chunks since the last call were written (ms)."""
        if not self.late_us:
            return {"paced_chunks": 0}
        p50, p99, most = percentiles(self.late_us, (50, 99, 100))
        return {
            "paced_chunks": len(self.late_us),
            "late_p50_ms": p50 / 1000,
            "late_p99_ms": p99 / 1000,
            "late_max_ms": most / 1000,
        }

    async def answer(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        chunks, rate, pad = params(body)
        model = str(body.get("model", "claude-bench"))
        if not body.get("stream"):
            text = "".join(f"{time.time_ns()}{'.' * pad}|" for _ in range(chunks))
            message = _message(model, "end_turn", chunks)
            message["content"] = [{"type": "text", "text": text}]
            data = orjson.dumps(message)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%b" % (len(data), data)
            )
            await writer.drain()
            return
        self.streams += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
            + _sse("message_start", {"type": "message_start", "message": _message(model, None)})
            + _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        await writer.drain()
        loop = asyncio.get_running_loop()
        dots = b"." * pad
        start = loop.time()
        period = 1.0 / rate if rate > 0 else 0.0
        for i in range(chunks):
            if period:
                delay = start + i * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.late_us.append(int((loop.time() - start - i * period) * 1e6))
            writer.write(_delta(b"%d%b|" % (time.time_ns(), dots)))
            self.chunks += 1
            if not period or i % 64 == 63:
                await writer.drain()  # an unpaced stream still yields to the others
        writer.write(
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": chunks},
                },
            )
            + _sse("message_stop", {"type": "message_stop"})
            + b"0\r\n\r\n"
        )
        await writer.drain()


async def main(port: int) -> None:
    standin = StandIn()
    server = await asyncio.start_server(standin.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.port))
    except ImportError:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        pass
